import type { z } from 'zod';
import { issueMessage } from '../issues.ts';
import type { Rule } from '../rules/ast.ts';
import { ruleDependencies } from '../rules/compile.ts';
import { eventFilterSchema } from '../rules/event-filter.ts';
import { RULE_HINT, validateRule } from '../rules/schema.ts';
import type { DataCondition, FlowDefinition, FlowNode, JsonValue } from './ast.ts';
import { couponNodeIssues, couponRunFields } from './coupons.ts';
import { employeeNodeIssues } from './employees.ts';
import { experimentIssues } from './experiment.ts';
import { graphIssues } from './graph.ts';
import { flowSchema } from './schema.ts';
import { EMPLOYEE_TEMPLATE_FIELDS, parseTemplate, TEMPLATE_ROOTS, templateStrings } from './template.ts';
import { cronError, durationMs, isHolidayCountry, isTimeZone } from './time.ts';
import type { FlowContext, FlowIssue, FlowValidation } from './validate-types.ts';

export type { FlowContext, FlowIssue, FlowValidation } from './validate-types.ts';

type Path = (string | number)[];
const dotted = (p: Path) => p.join('.');
const at = (root: unknown, p: Path): unknown =>
  p.reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), root);

// The node an issue at `path` concerns: the node itself, or the `from` node of an edge.
function nodeAt(input: unknown, path: Path): string | undefined {
  if (path[0] === 'nodes' && typeof path[1] === 'number') {
    const id = at(input, ['nodes', path[1], 'id']);
    return typeof id === 'string' ? id : undefined;
  }
  if (path[0] === 'edges' && typeof path[1] === 'number') {
    const from = at(input, ['edges', path[1], 'from']);
    return typeof from === 'string' ? from : undefined;
  }
  return undefined;
}

function withNode(input: unknown, path: Path, message: string): FlowIssue {
  const node = nodeAt(input, path);
  return node === undefined ? { path: dotted(path), message } : { node, path: dotted(path), message };
}

// Of a union's alternatives, the one that got furthest: fewest issues, a matching discriminator.
function score(issues: readonly z.core.$ZodIssue[]): number {
  let s = issues.length;
  for (const i of issues) {
    const last = i.path[i.path.length - 1];
    if (last === 'type' || last === 'op' || last === 'cmp') s += 100;
    if (i.code === 'unrecognized_keys') s += 10;
  }
  return s;
}

function flatten(issue: z.core.$ZodIssue, prefix: Path, input: unknown, out: FlowIssue[]): void {
  const path = [...prefix, ...(issue.path as Path)];
  if (issue.code === 'invalid_union' && 'discriminator' in issue && issue.discriminator) {
    const given = at(input, path);
    const options = (issue as unknown as { options: string[] }).options.join(', ');
    out.push(
      withNode(
        input,
        path,
        given === undefined
          ? `required: one of ${options}`
          : `unknown ${String(issue.discriminator)} ${JSON.stringify(given)}; one of ${options}`,
      ),
    );
    return;
  }
  if (issue.code === 'invalid_union' && issue.errors.length) {
    const best = [...issue.errors].sort((a, b) => score(a) - score(b))[0]!;
    for (const i of best) flatten(i, path, input, out);
    return;
  }
  out.push(withNode(input, path, issueMessage({ ...issue, path } as z.core.$ZodIssue, input, { rule: RULE_HINT })));
}

// Where rules sit in a definition: checked by validateRule, whose messages name the leaf and field.
function rulePaths(input: unknown): Path[] {
  const paths: Path[] = [
    ['entry', 'rule'],
    ['exit', 'rule'],
  ];
  const nodes = at(input, ['nodes']);
  if (Array.isArray(nodes))
    nodes.forEach((n, i) => {
      const cases = at(n, ['cases']);
      if (Array.isArray(cases)) cases.forEach((_, j) => void paths.push(['nodes', i, 'cases', j, 'rule']));
    });
  return paths.filter((p) => at(input, p) !== undefined);
}

const startsWith = (path: Path, prefix: Path) => prefix.every((k, i) => path[i] === k);

function structureIssues(input: unknown): FlowIssue[] {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    return [{ path: '', message: 'expected a flow definition object' }];
  const issues: FlowIssue[] = [];
  const rules = rulePaths(input);
  for (const p of rules) {
    const v = validateRule(at(input, p));
    if (!v.ok)
      for (const i of v.issues) issues.push(withNode(input, [...p, ...(i.path ? i.path.split('.') : [])], i.message));
  }
  const parsed = flowSchema.safeParse(input);
  if (!parsed.success)
    for (const issue of parsed.error.issues) {
      if (rules.some((p) => startsWith(issue.path as Path, p))) continue;
      flatten(issue, [], input, issues);
    }
  return issues;
}

/**
 * Validates a flow definition: its structure (zod, with the node and field named), then its graph
 * (dangling edges, missing outgoing edges, unreachable nodes, cycles without a wait), its meaning
 * (time zones, cron, calendars, durations, split percentages, template variables that cannot
 * exist), and, when the caller passes what it knows (`context`), unknown destinations, actions,
 * audiences, tags, traits and calendars.
 *
 * @example
 * const v = validateFlow(body, { destinations: ['email'], audiences: ['vip'] });
 * if (!v.ok) return c.json({ error: { code: 'invalid_flow', details: v.issues } }, 400);
 */
export function validateFlow(input: unknown, context: FlowContext = {}): FlowValidation {
  const structural = structureIssues(input);
  if (structural.length) return { ok: false, issues: structural };
  const flow = input as FlowDefinition;
  const issues = [...graphIssues(flow), ...meaningIssues(flow, context)];
  return issues.length ? { ok: false, issues } : { ok: true, flow };
}

interface Known {
  eventTrigger: boolean;
  /** The template is a notify_employees message: `{{ employee.* }}` reads the employee it reaches. */
  employee?: boolean;
  /** Run data fields some node or the API sets; null when the API may pass any. */
  run: Set<string> | null;
  context: FlowContext;
}

function runFields(flow: FlowDefinition): Set<string> | null {
  if (flow.trigger.type === 'api' && !flow.trigger.data) return null;
  const fields = new Set<string>(flow.trigger.type === 'api' ? flow.trigger.data : []);
  for (const n of flow.nodes)
    if (n.type === 'webhook' || n.type === 'action' || n.type === 'wait_for_event')
      for (const f of Object.keys(n.keep ?? {})) fields.add(f);
  for (const n of flow.nodes) if (n.type === 'issue_coupon') for (const f of couponRunFields(n)) fields.add(f);
  return fields;
}

function variableIssue(root: string, path: string[], known: Known): string | undefined {
  const name = [root, ...path].join('.');
  if (root === 'employee') {
    if (!known.employee)
      return `{{ ${name} }}: employee.* is only in a notify_employees message (the employee it is addressed to)`;
    if (path.length !== 1 || !(EMPLOYEE_TEMPLATE_FIELDS as readonly string[]).includes(path[0]!))
      return `{{ ${name} }}: an employee has ${EMPLOYEE_TEMPLATE_FIELDS.map((f) => `employee.${f}`).join(', ')}`;
    return undefined;
  }
  if (!(TEMPLATE_ROOTS as readonly string[]).includes(root))
    return `{{ ${name} }}: unknown root "${root}"; one of ${TEMPLATE_ROOTS.join(', ')}`;
  if (root === 'event' && !known.eventTrigger)
    return `{{ ${name} }}: there is no trigger event (the trigger is not an event)`;
  if (root === 'run' && path[0] !== undefined && known.run && !known.run.has(path[0]))
    return `{{ ${name} }}: no node sets run.${path[0]} (run data comes from webhook, action and wait_for_event keep, and the API's declared data)`;
  if (root === 'profile' && path.join('.') !== 'id')
    return `{{ ${name} }}: a profile has only profile.id here; traits are traits.<key>`;
  const { traits, computed } = known.context;
  if (root === 'traits' && path[0] !== undefined && traits && !traits.includes(path[0]))
    return `{{ ${name} }}: unknown trait "${path[0]}"`;
  if (root === 'computed' && path[0] !== undefined && computed && !computed.includes(path[0]))
    return `{{ ${name} }}: unknown computed trait "${path[0]}"`;
  return undefined;
}

function templateIssues(text: string, path: string, node: string, known: Known): FlowIssue[] {
  const parsed = parseTemplate(text);
  const messages = [...parsed.errors, ...parsed.variables.flatMap((v) => variableIssue(v.root, v.path, known) ?? [])];
  return messages.map((message) => ({ node, path, message }));
}

function ruleContextIssues(rule: Rule, path: string, context: FlowContext, node?: string): FlowIssue[] {
  const d = ruleDependencies(rule);
  const out: string[] = [];
  if (context.audiences)
    for (const a of d.audiences) if (!context.audiences.includes(a)) out.push(`unknown audience "${a}"`);
  if (context.tags) for (const t of d.tags) if (!context.tags.includes(t)) out.push(`unknown tag "${t}"`);
  if (context.computed)
    for (const c of d.computed) if (!context.computed.includes(c)) out.push(`unknown computed trait "${c}"`);
  return out.map((message) => (node ? { node, path, message } : { path, message }));
}

function conditionIssues(conditions: readonly DataCondition[], path: string, node: string, known: Known): FlowIssue[] {
  const issues: FlowIssue[] = [];
  const r = eventFilterSchema.safeParse({ where: conditions });
  if (!r.success)
    for (const i of r.error.issues)
      issues.push({ node, path: `${path}.${i.path.slice(1).join('.')}`, message: i.message });
  conditions.forEach((c, i) => {
    const plain = 'not' in c ? c.not : c;
    if (!('field' in plain)) return;
    const [root, ...rest] = plain.field.split('.');
    const message =
      root === 'run' || root === 'event'
        ? variableIssue(root, rest, known)
        : `a condition reads run.<field> or event.<path>, not "${plain.field}"`;
    if (message) issues.push({ node, path: `${path}.${i}${'not' in c ? '.not' : ''}.field`, message });
  });
  return issues;
}

function nodeIssues(n: FlowNode, i: number, known: Known): FlowIssue[] {
  const issues: FlowIssue[] = [];
  const ctx = known.context;
  const add = (field: string, message: string) =>
    issues.push({ node: n.id, path: `nodes.${i}${field ? `.${field}` : ''}`, message });
  const templates = (field: string, value: JsonValue | undefined) => {
    for (const t of templateStrings(value)) issues.push(...templateIssues(t, `nodes.${i}.${field}`, n.id, known));
  };
  const destination = (d: string) => {
    if (ctx.destinations && !ctx.destinations.includes(d)) add('destination', `unknown destination "${d}"`);
  };
  switch (n.type) {
    case 'wait':
      if (durationMs(n.duration) <= 0) add('duration', 'a wait needs a duration above 0');
      break;
    case 'wait_for_event':
      if (durationMs(n.timeout) <= 0) add('timeout', 'a timeout above 0 is needed');
      n.match?.forEach((m, j) => {
        if (known.run && !known.run.has(m.run)) add(`match.${j}.run`, `no node sets run.${m.run}`);
      });
      break;
    case 'wait_until':
      if ('trait' in n.until && ctx.traits && !ctx.traits.includes(n.until.trait))
        add('until.trait', `unknown trait "${n.until.trait}"`);
      break;
    case 'branch':
      n.cases.forEach((c, j) => {
        if (!c.rule && !c.data?.length) add(`cases.${j}`, 'a case needs a rule, data conditions or both');
        if (c.rule) issues.push(...ruleContextIssues(c.rule, `nodes.${i}.cases.${j}.rule`, ctx, n.id));
        if (c.data) issues.push(...conditionIssues(c.data, `nodes.${i}.cases.${j}.data`, n.id, known));
      });
      break;
    case 'split': {
      const hundredths = n.paths.map((p) => p.percent * 100);
      if (hundredths.some((h) => Math.abs(h - Math.round(h)) > 1e-9))
        add('paths', 'percentages have at most two decimals');
      const sum = hundredths.reduce((a, b) => a + Math.round(b), 0);
      if (sum !== 10_000) add('paths', `percentages add up to ${sum / 100}, not 100`);
      break;
    }
    case 'experiment':
      issues.push(...experimentIssues(n, i));
      break;
    case 'send':
      destination(n.destination);
      templates('message.body', n.message.body);
      if (n.message.subject !== undefined) templates('message.subject', n.message.subject);
      break;
    case 'update_profile':
      templates('set', (n.set ?? {}) as JsonValue);
      if (ctx.tags)
        for (const t of n.removeTags ?? []) if (!ctx.tags.includes(t)) add('removeTags', `unknown tag "${t}"`);
      break;
    case 'webhook':
      templates('url', n.url);
      templates('headers', (n.headers ?? {}) as JsonValue);
      if (n.body !== undefined) templates('body', n.body);
      break;
    case 'action':
      destination(n.destination);
      if (ctx.actions?.[n.destination] && !ctx.actions[n.destination]!.includes(n.action))
        add(
          'action',
          `destination "${n.destination}" has no action "${n.action}"; it has ${ctx.actions[n.destination]!.join(', ') || 'none'}`,
        );
      templates('input', (n.input ?? {}) as JsonValue);
      break;
    case 'assign_owner':
      if (n.mode === 'rule')
        n.cases.forEach(
          (c, j) => void issues.push(...ruleContextIssues(c.rule, `nodes.${i}.cases.${j}.rule`, ctx, n.id)),
        );
      for (const x of employeeNodeIssues(n, { eventTrigger: known.eventTrigger })) add(x.field, x.message);
      break;
    case 'notify_employees':
      for (const field of ['body', 'subject'] as const) {
        const text = n.message[field];
        if (text !== undefined)
          issues.push(...templateIssues(text, `nodes.${i}.message.${field}`, n.id, { ...known, employee: true }));
      }
      for (const x of employeeNodeIssues(n, {
        eventTrigger: known.eventTrigger,
        ...(ctx.destinations ? { destinations: ctx.destinations } : {}),
      }))
        add(x.field, x.message);
      break;
    case 'issue_coupon':
      for (const x of couponNodeIssues(n, ctx)) add(x.field, x.message);
      break;
    case 'points':
      templates('reason', n.reason);
      if (typeof n.delta === 'string') templates('delta', n.delta);
      break;
  }
  return issues;
}

function triggerIssues(flow: FlowDefinition, ctx: FlowContext): FlowIssue[] {
  const t = flow.trigger;
  const issues: FlowIssue[] = [];
  const add = (field: string, message: string) => issues.push({ path: `trigger.${field}`, message });
  if ((t.type === 'schedule' || t.type === 'calendar') && t.timezone !== undefined && !isTimeZone(t.timezone))
    add('timezone', `"${t.timezone}" is not an IANA time zone (Europe/Berlin, America/New_York, UTC)`);
  if (t.type === 'schedule') {
    const err = cronError(t.cron);
    if (err) add('cron', `not a cron expression: ${err}`);
  }
  if (
    (t.type === 'schedule' || t.type === 'calendar' || t.type === 'audience_entered' || t.type === 'audience_exited') &&
    t.audience &&
    ctx.audiences &&
    !ctx.audiences.includes(t.audience)
  )
    add('audience', `unknown audience "${t.audience}"`);
  if (t.type === 'calendar') {
    const c = t.calendar;
    if ('country' in c && !isHolidayCountry(c.country, c.region))
      add('calendar', `no public holidays known for ${c.country}${c.region ? `-${c.region}` : ''}`);
    if ('custom' in c && ctx.calendars && !ctx.calendars.includes(c.custom))
      add('calendar.custom', `unknown calendar "${c.custom}"`);
  }
  if ((t.type === 'tag_added' || t.type === 'tag_removed') && ctx.tags && !ctx.tags.includes(t.tag))
    add('tag', `unknown tag "${t.tag}"`);
  if (
    (t.type === 'date_trait' || (t.type === 'trait_changed' && !t.computed)) &&
    ctx.traits &&
    !ctx.traits.includes(t.trait)
  )
    add('trait', `unknown trait "${t.trait}"`);
  if (t.type === 'trait_changed' && t.computed && ctx.computed && !ctx.computed.includes(t.trait.split('.')[0]!))
    add('trait', `unknown computed trait "${t.trait}"`);
  if (t.type === 'event' && t.where) {
    const r = eventFilterSchema.safeParse({ where: t.where });
    if (!r.success) for (const i of r.error.issues) add(i.path.join('.'), i.message);
  }
  return issues;
}

function meaningIssues(flow: FlowDefinition, ctx: FlowContext): FlowIssue[] {
  const issues: FlowIssue[] = [];
  if (flow.timezone !== undefined && !isTimeZone(flow.timezone))
    issues.push({
      path: 'timezone',
      message: `"${flow.timezone}" is not an IANA time zone (Europe/Berlin, America/New_York, UTC)`,
    });
  issues.push(...triggerIssues(flow, ctx));
  if (flow.entry.rule) issues.push(...ruleContextIssues(flow.entry.rule, 'entry.rule', ctx));
  if (flow.exit) issues.push(...ruleContextIssues(flow.exit.rule, 'exit.rule', ctx));
  const known: Known = { eventTrigger: flow.trigger.type === 'event', run: runFields(flow), context: ctx };
  flow.nodes.forEach((n, i) => void issues.push(...nodeIssues(n, i, known)));
  return issues;
}
