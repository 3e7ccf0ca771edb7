import { z } from 'zod';
import type { Rule } from '../rules/ast.ts';
import { eventFilterSchema } from '../rules/event-filter.ts';
import { pathSchema, ruleSchema, withComparison } from '../rules/schema.ts';
import type { FlowDefinition, FlowNode, Trigger } from './ast.ts';
import { COUPON_NODE_SCHEMAS } from './coupons.ts';
import { EMPLOYEE_NODE_SCHEMAS } from './employees.ts';
import { experimentFields } from './experiment-schema.ts';

/** The limits a flow must respect. */
export const FLOW_LIMITS = {
  nodes: 200,
  edges: 400,
  cases: 20,
  paths: 10,
  /** The longest wait, timeout or goal window (two years, Braze's extended limit). */
  days: 730,
  templateLength: 100_000,
} as const;

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const KEY = /^[a-z][a-z0-9_]{0,63}$/;

const nodeId = z.string().regex(ID, 'a node id: letters, digits, _ and -, at most 64');
const field = z.string().regex(FIELD, 'a run data field: letters, digits and _, not starting with a digit');
const name = z.string().min(1).max(200);
const key = z.string().regex(KEY, 'a key: lower-case letters, digits and _, starting with a letter');
const template = z.string().max(FLOW_LIMITS.templateLength);
const localTime = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a local time of day: HH:MM (24-hour)');
const zone = z.string().min(1).max(64).describe('an IANA time zone: Europe/Berlin, America/New_York, UTC');
const offsetDays = z.number().int().min(-FLOW_LIMITS.days).max(FLOW_LIMITS.days);
const unit = (max: number) => z.number().int().min(0).max(max).optional();
// Integers only: a wait is planned to the second; fractions would drift between runner and simulation.
const duration = z.strictObject({
  days: unit(FLOW_LIMITS.days),
  hours: unit(FLOW_LIMITS.days * 24),
  minutes: unit(FLOW_LIMITS.days * 24 * 60),
  seconds: unit(FLOW_LIMITS.days * 24 * 3600),
});
// Any JSON value (the body it came in was JSON): not a recursive schema, which the JSON Schema would
// have to carry as a shared definition beside the flow.
const json = z.unknown().describe('any JSON value; strings are templates');
const condition = z.union([
  ...withComparison({ property: pathSchema }),
  ...withComparison({ field: pathSchema.describe("a dot path from the event's root: context.locale, userId") }),
]);
const conditions = z.array(z.union([condition, z.strictObject({ not: condition })])).max(20);
const dataConditions = z
  .array(
    z.union([
      ...withComparison({ field: pathSchema }),
      z.strictObject({ not: z.union(withComparison({ field: pathSchema })) }),
    ]),
  )
  .max(20)
  .describe('conditions on run data and the trigger event: fields run.<name>, event.<path>');
const keep = z.record(field, pathSchema).describe('run data field → dot path in the result');
const weekday = z.enum(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']);

/** The zod schema of each trigger, by type. */
export const TRIGGER_SCHEMAS = {
  event: z.strictObject({ type: z.literal('event'), event: name, where: conditions.optional() }),
  audience_entered: z.strictObject({ type: z.literal('audience_entered'), audience: key }),
  audience_exited: z.strictObject({ type: z.literal('audience_exited'), audience: key }),
  tag_added: z.strictObject({ type: z.literal('tag_added'), tag: key }),
  tag_removed: z.strictObject({ type: z.literal('tag_removed'), tag: key }),
  trait_changed: z.strictObject({
    type: z.literal('trait_changed'),
    trait: name,
    computed: z.boolean().optional(),
    to: z.union(withComparison({})).optional(),
  }),
  date_trait: z.strictObject({
    type: z.literal('date_trait'),
    trait: name,
    offsetDays,
    time: localTime,
    repeat: z.enum(['yearly', 'once']),
  }),
  schedule: z.strictObject({
    type: z.literal('schedule'),
    cron: z.string().min(1).max(200).describe('a cron expression: 5 fields, or 6 with seconds first'),
    timezone: zone,
    audience: key,
  }),
  calendar: z.strictObject({
    type: z.literal('calendar'),
    calendar: z.union([
      z.strictObject({
        country: z.string().regex(/^[A-Z]{2}$/, 'an ISO 3166-1 country code: DE, US'),
        region: z.string().min(1).max(10).optional(),
      }),
      z.strictObject({ custom: key }),
    ]),
    offsetDays,
    time: localTime,
    audience: key.optional(),
    timezone: zone.optional(),
  }),
  api: z.strictObject({ type: z.literal('api'), data: z.array(field).max(50).optional() }),
} as const;

const base = { id: nodeId, name: name.optional() };

/** The zod schema of each node, by type (structure; `validateFlow` checks the graph and the meaning). */
export const NODE_SCHEMAS = {
  wait: z.strictObject({ ...base, type: z.literal('wait'), duration }),
  wait_until: z.strictObject({
    ...base,
    type: z.literal('wait_until'),
    until: z.union([
      z.strictObject({ time: localTime, weekdays: z.array(weekday).min(1).max(7).optional() }),
      z.strictObject({ trait: name, offsetDays: offsetDays.optional(), time: localTime.optional() }),
    ]),
  }),
  wait_for_event: z.strictObject({
    ...base,
    type: z.literal('wait_for_event'),
    event: eventFilterSchema,
    match: z
      .array(z.strictObject({ field: pathSchema, run: field }))
      .max(10)
      .optional(),
    timeout: duration,
    keep: keep.optional(),
  }),
  branch: z.strictObject({
    ...base,
    type: z.literal('branch'),
    cases: z
      .array(z.strictObject({ name: name.optional(), rule: ruleSchema.optional(), data: dataConditions.optional() }))
      .min(1)
      .max(FLOW_LIMITS.cases),
  }),
  split: z.strictObject({
    ...base,
    type: z.literal('split'),
    paths: z
      .array(z.strictObject({ percent: z.number().min(0).max(100), name: name.optional() }))
      .min(2)
      .max(FLOW_LIMITS.paths),
  }),
  experiment: z.strictObject({ ...base, type: z.literal('experiment'), ...experimentFields }),
  send: z.strictObject({
    ...base,
    type: z.literal('send'),
    destination: z.string().min(1).max(200),
    message: z.strictObject({ subject: template.optional(), body: template, track: z.boolean().optional() }),
    onCap: z.enum(['defer', 'skip']).optional(),
    transactional: z.boolean().optional(),
  }),
  update_profile: z.strictObject({
    ...base,
    type: z.literal('update_profile'),
    set: z.record(name, json).optional(),
    unset: z.array(name).max(100).optional(),
    addTags: z.array(key).max(100).optional(),
    removeTags: z.array(key).max(100).optional(),
  }),
  webhook: z.strictObject({
    ...base,
    type: z.literal('webhook'),
    url: z.string().min(1).max(2000),
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']),
    headers: z.record(z.string().min(1).max(200), z.string().max(4000)).optional(),
    body: template.optional(),
    keep: keep.optional(),
  }),
  action: z.strictObject({
    ...base,
    type: z.literal('action'),
    destination: z.string().min(1).max(200),
    action: name,
    input: z.record(z.string(), json).optional(),
    keep: keep.optional(),
  }),
  ...EMPLOYEE_NODE_SCHEMAS,
  ...COUPON_NODE_SCHEMAS,
  exit: z.strictObject({ ...base, type: z.literal('exit') }),
} as const;

/** The node types, in the README's order. */
export const NODE_TYPES = Object.keys(NODE_SCHEMAS) as FlowNode['type'][];
/** The trigger types. */
export const TRIGGER_TYPES = Object.keys(TRIGGER_SCHEMAS) as Trigger['type'][];

const values = <T extends Record<string, z.ZodType>>(o: T) => Object.values(o) as [T[keyof T], ...T[keyof T][]];

export const triggerSchema = z.discriminatedUnion('type', values(TRIGGER_SCHEMAS));
export const nodeSchema = z.discriminatedUnion('type', values(NODE_SCHEMAS));
export const edgeSchema = z.strictObject({
  from: nodeId,
  to: nodeId,
  on: z
    .string()
    .regex(
      /^(next|matched|timeout|missing|failed|else|case:\d+|path:\d+|variant:\d+|control|empty|insufficient)$/,
      'an outcome: next, matched, timeout, missing, failed, else, case:<i>, path:<i>, variant:<i>, control, empty or insufficient',
    ),
});
export const reentrySchema = z.union([
  z.enum(['once', 'every_time']),
  z.strictObject({ afterDays: z.number().int().min(1).max(36_600) }),
]);

/**
 * The zod schema of a flow definition (structure only: `validateFlow` adds the graph checks, zones,
 * cron, templates and what the server knows about destinations, audiences, tags and traits).
 *
 * @example
 * flowSchema.safeParse(body).success;
 */
export const flowSchema = z.strictObject({
  version: z.literal(1),
  name,
  timezone: zone.optional(),
  priority: z.number().int().min(-1000).max(1000).optional(),
  trigger: triggerSchema,
  entry: z.strictObject({
    rule: (ruleSchema as z.ZodType<Rule>).optional(),
    reentry: reentrySchema,
    concurrent: z.boolean().optional(),
  }),
  goal: z
    .strictObject({
      event: eventFilterSchema,
      withinSeconds: z
        .number()
        .int()
        .min(1)
        .max(FLOW_LIMITS.days * 86_400),
      exit: z.boolean(),
    })
    .optional(),
  exit: z.strictObject({ rule: ruleSchema }).optional(),
  nodes: z.array(nodeSchema).min(1).max(FLOW_LIMITS.nodes),
  edges: z.array(edgeSchema).max(FLOW_LIMITS.edges),
}) as unknown as z.ZodType<FlowDefinition>;

/** A JSON Schema document (draft 2020-12), as plain JSON. */
export type FlowJsonSchema = { [key: string]: unknown };

/**
 * The flow definition as a JSON Schema (draft 2020-12), generated from `flowSchema`, for the OpenAPI
 * description. With `ruleRef`, every rule points there (the `Rule` component) instead of carrying its
 * own copy of the rule language.
 *
 * @example
 * components.schemas.Flow = flowJsonSchema({ ruleRef: '#/components/schemas/Rule' });
 */
export function flowJsonSchema(options: { ruleRef?: string } = {}): FlowJsonSchema {
  const settings = { target: 'draft-2020-12', io: 'input' } as const;
  if (!options.ruleRef) {
    const { $schema: _dialect, ...schema } = z.toJSONSchema(flowSchema, settings) as FlowJsonSchema;
    return schema;
  }
  const registry = z.registry<{ id: string }>();
  registry.add(ruleSchema, { id: 'rule' });
  registry.add(flowSchema, { id: 'flow' });
  const { schemas } = z.toJSONSchema(registry, {
    ...settings,
    uri: (id) => (id === 'rule' ? options.ruleRef! : `#${id}`),
  });
  const { $id: _id, $schema: _dialect, ...schema } = schemas.flow as FlowJsonSchema;
  return schema;
}
