import { describe, expect, it } from 'vitest';
import { r } from '../rules/builder.ts';
import { FlowError, flow } from './builder.ts';

describe('flow builder', () => {
  it('builds the JSON a hand-written cart-abandoned flow would be', () => {
    const built = flow('Cart abandoned', { timezone: 'Europe/Berlin' })
      .trigger.event('Added To Cart')
      .entry({ reentry: { afterDays: 7 } })
      .goal({ event: 'Order Completed' }, { days: 3 }, { exit: true })
      .exitWhen(r.hasTag('do_not_contact'))
      .wait({ hours: 24 }, { id: 'wait_24h' })
      .send('email', { subject: 'Still thinking?', body: 'Your {{ event.properties.product }}' }, { id: 'reminder' })
      .build();
    expect(built).toEqual({
      version: 1,
      name: 'Cart abandoned',
      timezone: 'Europe/Berlin',
      trigger: { type: 'event', event: 'Added To Cart' },
      entry: { reentry: { afterDays: 7 } },
      goal: { event: { event: 'Order Completed' }, withinSeconds: 259_200, exit: true },
      exit: { rule: { op: 'has_tag', tag: 'do_not_contact' } },
      nodes: [
        { id: 'wait_24h', type: 'wait', duration: { hours: 24 } },
        {
          id: 'reminder',
          type: 'send',
          destination: 'email',
          message: { subject: 'Still thinking?', body: 'Your {{ event.properties.product }}' },
        },
      ],
      edges: [{ from: 'wait_24h', to: 'reminder', on: 'next' }],
    });
  });

  it('forks into paths for wait_for_event, branch and split, and joins them with goto', () => {
    const built = flow('Coupon')
      .trigger.event('Signed Up')
      .action('shop', 'issue_coupon', { percent: 10 }, { id: 'issue', keep: { coupon: 'code' } })
      .send('email', { body: 'Your code {{ run.coupon }}' })
      .waitForEvent(
        { event: 'Order Completed' },
        { days: 3 },
        {
          matched: (p) => p.exit({ id: 'done' }),
          timeout: (p) =>
            p.branch(
              [
                {
                  name: 'has phone',
                  rule: r.trait('phone').exists(),
                  path: (q) => q.send('sms', { body: 'Code {{ run.coupon }}' }).goto('done'),
                },
              ],
              (q) =>
                q.split([
                  { percent: 50, name: 'A', path: (s) => s.updateProfile({ addTags: ['follow_up'] }).goto('done') },
                  { percent: 50, name: 'B', path: (s) => s.goto('done') },
                ]),
            ),
        },
        { id: 'wait_order', match: [{ field: 'properties.coupon', run: 'coupon' }] },
      )
      .build();
    expect(built.nodes.map((n) => `${n.id}:${n.type}`)).toEqual([
      'issue:action',
      'send_2:send',
      'wait_order:wait_for_event',
      'done:exit',
      'branch_5:branch',
      'send_6:send',
      'split_7:split',
      'update_profile_8:update_profile',
    ]);
    expect(built.edges).toEqual([
      { from: 'issue', to: 'send_2', on: 'next' },
      { from: 'send_2', to: 'wait_order', on: 'next' },
      { from: 'wait_order', to: 'done', on: 'matched' },
      { from: 'wait_order', to: 'branch_5', on: 'timeout' },
      { from: 'branch_5', to: 'send_6', on: 'case:0' },
      { from: 'send_6', to: 'done', on: 'next' },
      { from: 'branch_5', to: 'split_7', on: 'else' },
      { from: 'split_7', to: 'update_profile_8', on: 'path:0' },
      { from: 'update_profile_8', to: 'done', on: 'next' },
      { from: 'split_7', to: 'done', on: 'path:1' },
    ]);
  });

  it('refuses to build an invalid flow, naming the node and reason', () => {
    const bad = () =>
      flow('Bad')
        .trigger.audienceEntered('vip')
        .send('email', { body: 'Hi {{ event.properties.name }}' }, { id: 'hello' })
        .wait({ days: 1 })
        .goto('nowhere')
        .build();
    expect(bad).toThrow(FlowError);
    try {
      bad();
    } catch (err) {
      expect((err as FlowError).issues).toEqual([
        { node: 'wait_2', path: 'edges.1.to', message: 'dangling edge: no node "nowhere"' },
        {
          node: 'hello',
          path: 'nodes.0.message.body',
          message: '{{ event.properties.name }}: there is no trigger event (the trigger is not an event)',
        },
      ]);
    }
  });

  it('has every trigger', () => {
    const t = () => flow('t');
    const triggers = [
      t().trigger.event('A', [{ property: 'total', cmp: '>', value: 1 }]),
      t().trigger.audienceEntered('vip'),
      t().trigger.audienceExited('vip'),
      t().trigger.tagAdded('lead'),
      t().trigger.tagRemoved('lead'),
      t().trigger.traitChanged('rfm.segment', { cmp: '=', value: 'churn_risk' }, true),
      t().trigger.dateTrait('birthday', { offsetDays: -7, time: '10:00', repeat: 'yearly' }),
      t().trigger.schedule('0 9 * * 1', 'Europe/Berlin', 'newsletter'),
      t().trigger.calendar({ country: 'DE' }, { offsetDays: -3, time: '09:00' }),
      t().trigger.api(['order_id']),
    ].map((b) => b.exit().build().trigger.type);
    expect(triggers).toEqual([
      'event',
      'audience_entered',
      'audience_exited',
      'tag_added',
      'tag_removed',
      'trait_changed',
      'date_trait',
      'schedule',
      'calendar',
      'api',
    ]);
  });
});
