import { describe, expect, it } from 'vitest';
import type { Rule } from '../rules/ast.ts';
import type { Edge, FlowDefinition, FlowNode, Trigger } from './ast.ts';
import { earliestSends, flowOverlap } from './conflicts.ts';
import { canAllHold } from './conflicts-satisfy.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.parse('2026-12-07T00:00:00Z');
const CHANNELS: Record<string, string> = { mail: 'email', mail2: 'email', text: 'sms' };
const options = { channelOf: (d: string) => CHANNELS[d], nowMs: NOW };

/** A flow: the trigger, then (optionally) a wait, then one send. */
function flow(
  trigger: Trigger,
  destination = 'mail',
  more: { wait?: number; rule?: Rule; nodes?: FlowNode[]; edges?: Edge[] } = {},
): FlowDefinition {
  const send: FlowNode = { id: 'send', type: 'send', destination, message: { body: 'Hi' } };
  const nodes: FlowNode[] =
    more.nodes ?? (more.wait ? [{ id: 'wait', type: 'wait', duration: { seconds: more.wait / 1000 } }, send] : [send]);
  const edges = more.edges ?? (more.wait ? [{ from: 'wait', to: 'send', on: 'next' }] : []);
  return {
    version: 1,
    name: 'f',
    trigger,
    entry: { reentry: 'every_time', ...(more.rule ? { rule: more.rule } : {}) },
    nodes,
    edges,
  };
}
const ordered: Trigger = { type: 'event', event: 'Ordered' };
const kinds = (r: { reasons: { kind: string }[] }) => r.reasons.map((x) => x.kind);

describe('flowOverlap', () => {
  it('finds the same event on the same channel at the same moment', () => {
    const r = flowOverlap(flow(ordered, 'mail'), flow(ordered, 'mail2'), options);
    expect(r.overlap).toBe(true);
    expect(kinds(r)).toEqual(['same_event', 'same_channel', 'close_in_time']);
    expect(r.reasons[2]).toMatchObject({
      gapMs: 0,
      text: 'their sends can come at the same moment (send at entry, send at entry)',
    });
  });

  it('names one destination shared, even when its channel is unknown', () => {
    const r = flowOverlap(flow(ordered, 'hook'), flow(ordered, 'hook'), options);
    expect(r.reasons.map((x) => x.text)).toContain('both send to destination hook');
  });

  it('keeps apart the same event with conditions that cannot both hold, and not those that can', () => {
    const where = (...w: object[]) => ({ ...ordered, where: w }) as Trigger;
    const pro = where({ property: 'plan', cmp: '=', value: 'pro' });
    const apart = flowOverlap(
      flow(pro),
      flow(where({ property: 'plan', cmp: 'in', value: ['free', 'team'] })),
      options,
    );
    expect(apart).toMatchObject({ overlap: false, apart: { kind: 'exclusive_conditions', path: 'properties.plan' } });
    // `=` on text ignores case, as the engine matches it.
    expect(flowOverlap(flow(pro), flow(where({ property: 'plan', cmp: '=', value: 'PRO' })), options).overlap).toBe(
      true,
    );
    const big = where({ property: 'total', cmp: '>', value: 100 });
    expect(flowOverlap(flow(big), flow(where({ property: 'total', cmp: '<', value: 200 })), options).overlap).toBe(
      true,
    );
    expect(flowOverlap(flow(big), flow(where({ property: 'total', cmp: '<=', value: 100 })), options)).toMatchObject({
      overlap: false,
      apart: { kind: 'exclusive_conditions' },
    });
    // A condition on another property says nothing about this one.
    expect(flowOverlap(flow(pro), flow(where({ property: 'total', cmp: '>', value: 1 })), options).overlap).toBe(true);
    expect(
      flowOverlap(flow(pro), flow(where({ not: { property: 'plan', cmp: '=', value: 'pro' } })), options).overlap,
    ).toBe(false);
  });

  it('keeps apart different events, and flows on different channels', () => {
    expect(flowOverlap(flow(ordered), flow({ type: 'event', event: 'Refunded' }), options)).toMatchObject({
      overlap: false,
      apart: { kind: 'different_triggers', text: 'different events ("Ordered", "Refunded")' },
    });
    const vip: Trigger = { type: 'audience_entered', audience: 'vip' };
    const r = flowOverlap(flow(vip, 'mail'), flow(vip, 'text'), options);
    expect(r).toMatchObject({
      overlap: false,
      apart: { kind: 'no_shared_channel', text: 'no shared destination or channel (this flow: email; the other: sms)' },
    });
    expect(kinds(r)).toEqual(['same_audience']);
  });

  it('says an event flow and an audience flow may share people, at any moment', () => {
    const r = flowOverlap(
      flow(ordered),
      flow({ type: 'audience_entered', audience: 'vip' }, 'mail2', { wait: 5 * DAY }),
      options,
    );
    expect(r.overlap).toBe(true);
    expect(kinds(r)).toEqual(['shared_people', 'same_channel', 'close_in_time']);
    expect(r.reasons[2]).toMatchObject({ gapMs: null });
  });

  it('names an audience both flows require, from a trigger or an entry rule', () => {
    const inVip: Rule = { op: 'in_audience', audience: 'vip' };
    const r = flowOverlap(
      flow(ordered, 'mail', { rule: inVip }),
      flow({ type: 'audience_entered', audience: 'vip' }),
      options,
    );
    expect(r.reasons[0]).toEqual({ kind: 'same_audience', audience: 'vip', text: 'both enter members of vip' });
    const notVip: Rule = { op: 'not', rule: inVip };
    expect(
      flowOverlap(
        flow(ordered, 'mail', { rule: notVip }),
        flow({ type: 'audience_entered', audience: 'vip' }),
        options,
      ),
    ).toMatchObject({
      overlap: false,
      apart: { kind: 'exclusive_conditions', path: 'audience:vip' },
    });
    const plan = (value: string): Rule => ({
      op: 'and',
      rules: [{ op: 'trait', trait: 'plan', cmp: '=', value }, inVip],
    });
    expect(
      flowOverlap(flow(ordered, 'mail', { rule: plan('pro') }), flow(ordered, 'mail', { rule: plan('free') }), options),
    ).toMatchObject({
      overlap: false,
      apart: { kind: 'exclusive_conditions', path: 'trait:plan' },
    });
  });

  it('measures close in time from the earliest send after entry, against the window', () => {
    const r = flowOverlap(flow(ordered, 'mail', { wait: 3 * DAY }), flow(ordered), options);
    expect(r).toMatchObject({ overlap: false, apart: { kind: 'far_apart', gapMs: 3 * DAY } });
    const wide = flowOverlap(
      flow(ordered, 'mail', { wait: 3 * DAY }),
      flow(ordered, 'mail', { wait: 2 * DAY }),
      options,
    );
    expect(wide.overlap).toBe(true);
    expect(wide.reasons.at(-1)).toMatchObject({ kind: 'close_in_time', gapMs: DAY });
    expect(
      flowOverlap(flow(ordered, 'mail', { wait: 3 * DAY }), flow(ordered), { ...options, windowMs: 4 * DAY }).overlap,
    ).toBe(true);
  });

  it('takes the shortest path to each send: a matched event waits for nothing, a timeout its timeout', () => {
    const def = flow(ordered, 'mail', {
      nodes: [
        { id: 'w', type: 'wait_for_event', event: { event: 'Paid' }, timeout: { days: 2 } },
        { id: 'long', type: 'wait', duration: { days: 7 } },
        { id: 'thanks', type: 'send', destination: 'mail', message: { body: 'Thanks' } },
        { id: 'nudge', type: 'send', destination: 'text', message: { body: 'Pay?' } },
        { id: 'orphan', type: 'send', destination: 'text', message: { body: 'never' } },
      ],
      edges: [
        { from: 'w', to: 'long', on: 'matched' },
        { from: 'long', to: 'thanks', on: 'next' },
        { from: 'w', to: 'nudge', on: 'timeout' },
        { from: 'nudge', to: 'thanks', on: 'next' },
      ],
    });
    expect(earliestSends(def, options.channelOf)).toEqual([
      { node: 'thanks', destination: 'mail', channel: 'email', afterMs: 2 * DAY },
      { node: 'nudge', destination: 'text', channel: 'sms', afterMs: 2 * DAY },
    ]);
  });

  it('ties schedules that fire within the window of each other, and no others', () => {
    const at = (cron: string, audience = 'all'): Trigger => ({ type: 'schedule', cron, timezone: 'UTC', audience });
    const close = flowOverlap(flow(at('0 9 * * *')), flow(at('30 9 * * *', 'vip')), { ...options, windowMs: HOUR });
    expect(close.overlap).toBe(true);
    expect(close.reasons[0]).toMatchObject({ kind: 'schedules_close', gapMs: 30 * 60_000 });
    // Every minute against every five: thousands of firings in the horizon, tied at the same moment.
    const busy = flowOverlap(flow(at('* * * * *')), flow(at('*/5 * * * *')), options);
    expect(busy.reasons[0]).toMatchObject({ kind: 'schedules_close', gapMs: 0 });
    const far = flowOverlap(flow(at('0 9 * * 1')), flow(at('0 9 * * 4')), { ...options, windowMs: HOUR });
    expect(far).toMatchObject({ overlap: false, apart: { kind: 'different_triggers' } });
  });

  it('offsets date-trait flows by their days and times', () => {
    const bd = (offsetDays: number, time: string): Trigger => ({
      type: 'date_trait',
      trait: 'birthday',
      offsetDays,
      time,
      repeat: 'yearly',
    });
    const r = flowOverlap(flow(bd(0, '09:00')), flow(bd(-1, '10:00')), options);
    expect(r.reasons[0]).toMatchObject({
      kind: 'same_date',
      offsetMs: -23 * HOUR,
      text: 'both start on birthday; this one 23 h earlier',
    });
    expect(r.overlap).toBe(true);
    expect(flowOverlap(flow(bd(0, '09:00')), flow(bd(-2, '09:00')), options)).toMatchObject({
      overlap: false,
      apart: { kind: 'far_apart', gapMs: 2 * DAY },
    });
  });

  it('ties tags, trait changes and calendars of one kind; different directions share only people', () => {
    const tagged: Trigger = { type: 'tag_added', tag: 'lead' };
    expect(flowOverlap(flow(tagged), flow(tagged), options).reasons[0]).toMatchObject({
      kind: 'same_tag',
      tag: 'lead',
    });
    expect(flowOverlap(flow(tagged), flow({ type: 'tag_added', tag: 'churned' }), options)).toMatchObject({
      overlap: false,
      apart: { kind: 'different_triggers' },
    });
    const to = (value: string): Trigger => ({ type: 'trait_changed', trait: 'plan', to: { cmp: '=', value } });
    expect(
      kinds(flowOverlap(flow(to('pro')), flow({ type: 'trait_changed', trait: 'plan' }, 'mail2'), options)),
    ).toEqual(['same_trait_change', 'same_channel', 'close_in_time']);
    expect(flowOverlap(flow(to('pro')), flow(to('free')), options)).toMatchObject({
      overlap: false,
      apart: { kind: 'different_triggers', text: 'both watch plan, but for values that cannot both hold' },
    });
    const holiday = (offsetDays: number, time: string): Trigger => ({
      type: 'calendar',
      calendar: { country: 'DE' },
      offsetDays,
      time,
    });
    const eve = flowOverlap(flow(holiday(0, '09:00')), flow(holiday(-1, '18:00')), options);
    expect(eve.reasons[0]).toMatchObject({ kind: 'same_calendar', offsetMs: -15 * HOUR });
    expect(eve.overlap).toBe(true);
    // Another calendar: no moment in common, but maybe people.
    const other = flowOverlap(
      flow(holiday(0, '09:00')),
      flow({ ...holiday(0, '09:00'), calendar: { country: 'FR' } } as Trigger),
      options,
    );
    expect(kinds(other)[0]).toBe('shared_people');
    // Entering and leaving one audience happen at different moments for a person: only people in common.
    const enters = flowOverlap(
      flow({ type: 'audience_entered', audience: 'vip' }),
      flow({ type: 'audience_exited', audience: 'vip' }, 'mail2'),
      options,
    );
    expect(kinds(enters)).toEqual(['shared_people', 'same_channel', 'close_in_time']);
  });

  it('counts an API-triggered flow as sharing people at any moment', () => {
    const r = flowOverlap(flow({ type: 'api' }), flow({ type: 'api' }, 'mail2', { wait: 30 * DAY }), options);
    expect(r.overlap).toBe(true);
    expect(r.reasons.at(-1)).toMatchObject({ kind: 'close_in_time', gapMs: null });
  });

  it('keeps apart a flow that sends nothing', () => {
    const quiet = flow(ordered, 'mail', { nodes: [{ id: 'x', type: 'exit' }], edges: [] });
    expect(flowOverlap(flow(ordered), quiet, options)).toMatchObject({ overlap: false, apart: { kind: 'no_sends' } });
  });
});

describe('canAllHold', () => {
  it('tries the values that settle the conditions with the engine’s comparisons', () => {
    expect(
      canAllHold(
        [
          { cmp: '=', value: 3 },
          { cmp: '=', value: '3.0' },
        ],
        NOW,
      ),
    ).toBe(true);
    expect(
      canAllHold(
        [
          { cmp: 'between', value: [1, 5] },
          { cmp: '>', value: 5 },
        ],
        NOW,
      ),
    ).toBe(false);
    expect(
      canAllHold(
        [
          { cmp: '>', value: 1 },
          { cmp: '<', value: 2 },
          { cmp: '!=', value: 1.5 },
        ],
        NOW,
      ),
    ).toBe(true);
    expect(canAllHold([{ cmp: 'exists' }, { cmp: 'exists', negated: true }], NOW)).toBe(false);
    // Text patterns are not decided: they may hold.
    expect(
      canAllHold(
        [
          { cmp: 'regex', value: '^a' },
          { cmp: 'starts_with', value: 'b' },
        ],
        NOW,
      ),
    ).toBe(true);
  });
});
