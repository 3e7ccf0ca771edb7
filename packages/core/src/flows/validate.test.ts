import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { ruleJsonSchema } from '../rules/json-schema.ts';
import type { FlowDefinition, FlowNode } from './ast.ts';
import { flowJsonSchema } from './schema.ts';
import { validateFlow } from './validate.ts';

const base = (
  nodes: FlowNode[],
  edges: FlowDefinition['edges'],
  extra: Partial<FlowDefinition> = {},
): FlowDefinition => ({
  version: 1,
  name: 'test',
  trigger: { type: 'event', event: 'Added To Cart' },
  entry: { reentry: 'once' },
  nodes,
  edges,
  ...extra,
});

const cart = base(
  [
    { id: 'wait', type: 'wait', duration: { hours: 24 } },
    {
      id: 'email',
      type: 'send',
      destination: 'email',
      message: {
        subject: 'Hi {{ traits.first_name | default: "there" }}',
        body: 'Your {{ event.properties.product }}',
      },
    },
  ],
  [{ from: 'wait', to: 'email', on: 'next' }],
  { goal: { event: { event: 'Order Completed' }, withinSeconds: 3 * 86_400, exit: true } },
);

const issuesOf = (def: unknown, context = {}) => {
  const v = validateFlow(def, context);
  return v.ok ? [] : v.issues;
};

describe('validateFlow', () => {
  it('accepts a well-formed flow', () => {
    expect(validateFlow(cart)).toEqual({ ok: true, flow: cart });
  });

  it('names the node and field of a structural problem, with what is valid', () => {
    const bad = base(
      [{ id: 'w', type: 'wait', duration: { hours: 'x' } } as never, { id: 'n', type: 'nap' } as never],
      [],
    );
    expect(issuesOf(bad)).toEqual([
      { node: 'w', path: 'nodes.0.duration.hours', message: 'expected a number, got the string "x"' },
      {
        node: 'n',
        path: 'nodes.1.type',
        message: expect.stringMatching(/^unknown type "nap"; one of wait, wait_until, wait_for_event, branch/),
      },
    ]);
  });

  it('reports a bad rule inside a branch with the rule language own words, at the node', () => {
    const bad = base(
      [
        {
          id: 'b',
          type: 'branch',
          cases: [{ rule: { op: 'trait', trait: 'plan', cmp: 'like', value: 'x' } as never }],
        },
        { id: 'x', type: 'exit' },
      ],
      [
        { from: 'b', to: 'x', on: 'case:0' },
        { from: 'b', to: 'x', on: 'else' },
      ],
    );
    expect(issuesOf(bad)).toEqual([
      { node: 'b', path: 'nodes.0.cases.0.rule.cmp', message: expect.stringContaining('"like" is not a comparison') },
    ]);
  });

  it('refuses dangling edges, naming the node they leave', () => {
    const bad = base(cart.nodes, [...cart.edges, { from: 'email', to: 'sms', on: 'next' }]);
    expect(issuesOf(bad)).toEqual([{ node: 'email', path: 'edges.1.to', message: 'dangling edge: no node "sms"' }]);
    const from = base(cart.nodes, [...cart.edges, { from: 'ghost', to: 'email', on: 'next' }]);
    expect(issuesOf(from)).toEqual([
      { node: 'ghost', path: 'edges.1.from', message: 'dangling edge: no node "ghost"' },
    ]);
  });

  it('refuses missing required edges and outcomes a node never has', () => {
    const bad = base(
      [
        {
          id: 'coupon_used',
          type: 'wait_for_event',
          event: { event: 'Coupon Redeemed' },
          timeout: { days: 3 },
        },
        { id: 'sms', type: 'send', destination: 'sms', message: { body: 'Your coupon expires soon' } },
      ],
      [
        { from: 'coupon_used', to: 'sms', on: 'timeout' },
        { from: 'sms', to: 'coupon_used', on: 'matched' },
      ],
    );
    expect(issuesOf(bad)).toEqual([
      { node: 'sms', path: 'edges.1.on', message: 'a send node never ends with "matched"; its outcomes: next' },
      {
        node: 'coupon_used',
        path: 'nodes.0',
        message: 'missing edge: a wait_for_event node needs an edge for "matched"',
      },
    ]);
  });

  it('refuses a second edge on one outcome', () => {
    const bad = base(
      [...cart.nodes, { id: 'x', type: 'exit' }],
      [...cart.edges, { from: 'wait', to: 'x', on: 'next' }, { from: 'email', to: 'x', on: 'next' }],
    );
    expect(issuesOf(bad)).toEqual([
      { node: 'wait', path: 'edges.1', message: 'a second edge for "next" (edges.0 already leaves on it)' },
    ]);
  });

  it('names unreachable nodes', () => {
    const bad = base([...cart.nodes, { id: 'orphan', type: 'exit' }], cart.edges);
    expect(issuesOf(bad)).toEqual([
      { node: 'orphan', path: 'nodes.2', message: 'unreachable: no path leads here from the first node "wait"' },
    ]);
  });

  it('refuses a cycle without a wait, and accepts one with a wait', () => {
    const loop: FlowNode[] = [
      { id: 'check', type: 'branch', cases: [{ rule: { op: 'has_tag', tag: 'vip' } }] },
      { id: 'ping', type: 'send', destination: 'email', message: { body: 'again' } },
      { id: 'done', type: 'exit' },
    ];
    const edges = [
      { from: 'check', to: 'ping', on: 'else' },
      { from: 'check', to: 'done', on: 'case:0' },
      { from: 'ping', to: 'check', on: 'next' },
    ];
    expect(issuesOf(base(loop, edges))).toEqual([
      {
        node: 'check',
        path: 'nodes.0',
        message:
          'cycle without a wait through check, ping: a run could go round forever at one instant; put a wait in it',
      },
    ]);
    const waited = base(
      [...loop, { id: 'pause', type: 'wait', duration: { days: 1 } }],
      [edges[0]!, edges[1]!, { from: 'ping', to: 'pause', on: 'next' }, { from: 'pause', to: 'check', on: 'next' }],
    );
    expect(issuesOf(waited)).toEqual([]);
  });

  it('refuses split percentages that do not add up to 100', () => {
    const split = (percents: number[]) =>
      base(
        [
          { id: 'ab', type: 'split', paths: percents.map((percent) => ({ percent })) },
          { id: 'x', type: 'exit' },
        ],
        percents.map((_, i) => ({ from: 'ab', to: 'x', on: `path:${i}` })),
      );
    expect(issuesOf(split([50, 40]))).toEqual([
      { node: 'ab', path: 'nodes.0.paths', message: 'percentages add up to 90, not 100' },
    ]);
    expect(issuesOf(split([33.33, 33.33, 33.34]))).toEqual([]);
    expect(issuesOf(split([33.333, 66.667]))).toEqual([
      { node: 'ab', path: 'nodes.0.paths', message: 'percentages have at most two decimals' },
    ]);
  });

  it('refuses template variables that cannot exist', () => {
    const send = (body: string, trigger: FlowDefinition['trigger'] = { type: 'event', event: 'Signed Up' }) =>
      base([{ id: 's', type: 'send', destination: 'email', message: { body } }], [], { trigger });
    expect(issuesOf(send('Hi {{ user.name }}'))).toEqual([
      {
        node: 's',
        path: 'nodes.0.message.body',
        message: '{{ user.name }}: unknown root "user"; one of traits, computed, event, run, profile',
      },
    ]);
    expect(issuesOf(send('Code {{ event.properties.code }}', { type: 'audience_entered', audience: 'vip' }))).toEqual([
      {
        node: 's',
        path: 'nodes.0.message.body',
        message: '{{ event.properties.code }}: there is no trigger event (the trigger is not an event)',
      },
    ]);
    expect(issuesOf(send('Code {{ run.coupon_code }}'))[0]?.message).toMatch(/no node sets run.coupon_code/);
    expect(issuesOf(send('Hi {{ traits.first_name'))[0]?.message).toMatch(/never closed/);
    expect(issuesOf(send('Hi {{ traits.nick }}'), { traits: ['first_name'] })).toEqual([
      { node: 's', path: 'nodes.0.message.body', message: '{{ traits.nick }}: unknown trait "nick"' },
    ]);
    // run data set by an action's keep, or declared by the API trigger, can be used.
    const kept = base(
      [
        { id: 'issue', type: 'action', destination: 'shop', action: 'issue_coupon', keep: { coupon_code: 'code' } },
        { id: 's', type: 'send', destination: 'email', message: { body: '{{ run.coupon_code }}' } },
      ],
      [{ from: 'issue', to: 's', on: 'next' }],
    );
    expect(issuesOf(kept)).toEqual([]);
    expect(issuesOf(send('{{ run.order_id }}', { type: 'api', data: ['order_id'] }))).toEqual([]);
    expect(issuesOf(send('{{ run.anything }}', { type: 'api' }))).toEqual([]);
  });

  it('refuses invalid cron, time zones, calendars and durations', () => {
    const t = (trigger: FlowDefinition['trigger'], extra: Partial<FlowDefinition> = {}) =>
      issuesOf(base([{ id: 'x', type: 'exit' }], [], { trigger, ...extra }));
    expect(t({ type: 'schedule', cron: '61 9 * * 1', timezone: 'Europe/Berlin', audience: 'all' })).toEqual([
      { path: 'trigger.cron', message: 'not a cron expression: Constraint error, got value 61 expected range 0-59' },
    ]);
    expect(t({ type: 'schedule', cron: '0 9 * * 1', timezone: 'Mars/Olympus', audience: 'all' })[0]?.message).toMatch(
      /"Mars\/Olympus" is not an IANA time zone/,
    );
    expect(t({ type: 'api' }, { timezone: 'GMT+2' })[0]?.path).toBe('timezone');
    expect(t({ type: 'calendar', calendar: { country: 'XX' }, offsetDays: -3, time: '09:00' })).toEqual([
      { path: 'trigger.calendar', message: 'no public holidays known for XX' },
    ]);
    expect(t({ type: 'calendar', calendar: { country: 'DE', region: 'BY' }, offsetDays: -3, time: '09:00' })).toEqual(
      [],
    );
    expect(t({ type: 'date_trait', trait: 'birthday', offsetDays: -7, time: '25:00', repeat: 'yearly' })[0]?.path).toBe(
      'trigger.time',
    );
    const zero = base([{ id: 'w', type: 'wait', duration: {} }], []);
    expect(issuesOf(zero)).toEqual([
      { node: 'w', path: 'nodes.0.duration', message: 'a wait needs a duration above 0' },
    ]);
  });

  it('checks what the server knows: destinations, actions, audiences, tags, calendars', () => {
    const def = base(
      [
        { id: 'b', type: 'branch', cases: [{ rule: { op: 'in_audience', audience: 'vips' } }] },
        { id: 's', type: 'send', destination: 'mailgun', message: { body: 'x' } },
        { id: 'a', type: 'action', destination: 'shop', action: 'refund' },
      ],
      [
        { from: 'b', to: 's', on: 'case:0' },
        { from: 'b', to: 'a', on: 'else' },
      ],
      { trigger: { type: 'tag_added', tag: 'lead' } },
    );
    expect(
      issuesOf(def, {
        destinations: ['email', 'shop'],
        actions: { shop: ['issue_coupon'] },
        audiences: ['vip'],
        tags: ['lead'],
      }),
    ).toEqual([
      { node: 'b', path: 'nodes.0.cases.0.rule', message: 'unknown audience "vips"' },
      { node: 's', path: 'nodes.1.destination', message: 'unknown destination "mailgun"' },
      { node: 'a', path: 'nodes.2.action', message: 'destination "shop" has no action "refund"; it has issue_coupon' },
    ]);
  });

  it('checks branch data conditions: roots, the trigger event and known run fields', () => {
    const def = base(
      [
        {
          id: 'b',
          type: 'branch',
          cases: [
            { data: [{ field: 'run.score', cmp: '>', value: 3 }] },
            { data: [{ field: 'traits.x', cmp: 'exists' }] },
          ],
        },
        { id: 'x', type: 'exit' },
      ],
      [
        { from: 'b', to: 'x', on: 'case:0' },
        { from: 'b', to: 'x', on: 'case:1' },
        { from: 'b', to: 'x', on: 'else' },
      ],
    );
    expect(issuesOf(def)).toEqual([
      { node: 'b', path: 'nodes.0.cases.0.data.0.field', message: expect.stringMatching(/no node sets run.score/) },
      {
        node: 'b',
        path: 'nodes.0.cases.1.data.0.field',
        message: 'a condition reads run.<field> or event.<path>, not "traits.x"',
      },
    ]);
  });
});

describe('flowJsonSchema', () => {
  const ajv = new Ajv2020({ strict: true, allErrors: false });

  it('is a valid 2020-12 schema that accepts flows validateFlow accepts and refuses unknown node types', () => {
    const matches = ajv.compile(flowJsonSchema());
    expect(matches(cart), JSON.stringify(matches.errors)).toBe(true);
    expect(matches({ ...cart, nodes: [{ id: 'x', type: 'nap' }] })).toBe(false);
    expect(matches({ ...cart, extra: 1 })).toBe(false);
  });

  it('points rules at the Rule component when asked', () => {
    const schema = flowJsonSchema({ ruleRef: '#/components/schemas/Rule' });
    const doc = {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $defs: {
        Rule: ruleJsonSchema({ ref: '#/$defs/Rule' }),
        Flow: JSON.parse(JSON.stringify(schema).replaceAll('#/components/schemas/Rule', '#/$defs/Rule')),
      },
      $ref: '#/$defs/Flow',
    };
    const matches = new Ajv2020({ strict: true }).compile(doc);
    const withRule = { ...cart, entry: { reentry: 'once', rule: { op: 'has_tag', tag: 'vip' } } };
    expect(matches(withRule), JSON.stringify(matches.errors)).toBe(true);
    expect(matches({ ...cart, entry: { reentry: 'once', rule: { op: 'nope' } } })).toBe(false);
  });
});
