/**
 * The employee nodes: `assign_owner` links an employee to the person as their lead owner (a fixed one,
 * the next of a list in turn, or the one a rule picks), `notify_employees` sends a message about the
 * person to employees (the event's employee, supervisors, the person's linked employees, the lead
 * owner) through a destination. The engine decides what it can from the definition and the person; the
 * runner, which knows the directory, the links and the round-robin counters, does the rest in the
 * step's transaction.
 */
import { z } from 'zod';
import type { Rule } from '../rules/ast.ts';
import { pathSchema, ruleSchema } from '../rules/schema.ts';
import { valueAt } from '../rules/values.ts';
import type { FlowDefinition } from './ast.ts';
import type { AssignOwnerNode, NoticeParts, NotifyEmployeesEffect, NotifyEmployeesNode } from './employee-types.ts';
import { decideRule, decisionWords } from './facts.ts';
import type { Outcome, Step } from './state.ts';
import {
  finishTemplate,
  readsRoot,
  renderTemplateParts,
  scopeOf,
  type TemplateEmployee,
  type TemplateScope,
} from './template.ts';

/** The event path of the employee id when a node names none. */
export const DEFAULT_EMPLOYEE_PATH = 'properties.employee_id';

export type {
  AssignOwnerEffect,
  AssignOwnerNode,
  NoticePart,
  NoticeParts,
  NotifyEmployeesEffect,
  NotifyEmployeesNode,
  NotifyWho,
} from './employee-types.ts';

const ID = /^[A-Za-z0-9_-]{1,64}$/;
const nodeId = z.string().regex(ID, 'a node id: letters, digits, _ and -, at most 64');
const employeeId = z.string().regex(/^[A-Za-z0-9_.:@-]{1,128}$/, 'an employee id');
const template = z.string().max(100_000);
const base = { id: nodeId, name: z.string().min(1).max(200).optional(), keepExisting: z.boolean().optional() };

/** The zod schemas of the employee nodes, by type (spread into `NODE_SCHEMAS`). */
export const EMPLOYEE_NODE_SCHEMAS = {
  assign_owner: z.discriminatedUnion('mode', [
    z.strictObject({ ...base, type: z.literal('assign_owner'), mode: z.literal('fixed'), employee: employeeId }),
    z.strictObject({
      ...base,
      type: z.literal('assign_owner'),
      mode: z.literal('round_robin'),
      employees: z.array(employeeId).min(1).max(1000),
    }),
    z.strictObject({
      ...base,
      type: z.literal('assign_owner'),
      mode: z.literal('rule'),
      cases: z
        .array(z.strictObject({ rule: ruleSchema, employee: employeeId, name: z.string().min(1).max(200).optional() }))
        .min(1)
        .max(20),
      otherwise: employeeId.optional(),
    }),
  ]),
  notify_employees: z.strictObject({
    id: nodeId,
    name: z.string().min(1).max(200).optional(),
    type: z.literal('notify_employees'),
    who: z
      .array(z.enum(['event_employee', 'supervisors', 'linked', 'lead_owner']))
      .min(1)
      .max(4),
    supervisorLevels: z.number().int().min(1).max(20).optional(),
    eventEmployee: pathSchema.optional().describe(`the employee id's dot path in the event (${DEFAULT_EMPLOYEE_PATH})`),
    destination: z.string().min(1).max(200),
    message: z.strictObject({ subject: template.optional(), body: template }),
  }),
} as const;

/**
 * The employee id a notify node reads from the trigger event (a string or a number), if any.
 *
 * @example
 * eventEmployeeOf(node, { properties: { employee_id: 'emp_ann' } }); // 'emp_ann'
 */
export function eventEmployeeOf(node: NotifyEmployeesNode, event: unknown): string | undefined {
  const v = valueAt(event, (node.eventEmployee ?? DEFAULT_EMPLOYEE_PATH).split('.'));
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

const readsEvent = (n: NotifyEmployeesNode) =>
  n.who.includes('event_employee') || (n.who.length === 1 && n.who[0] === 'supervisors');

/** Whether a notice's message reads `{{ employee.* }}`: it is rendered once per employee it reaches. */
export function readsEmployee(message: { subject?: string; body: string }): boolean {
  return (
    readsRoot(message.body, 'employee') || (message.subject !== undefined && readsRoot(message.subject, 'employee'))
  );
}

/**
 * A notice's message rendered in a scope but for its `{{ employee.* }}` variables (filled per employee
 * by {@link noticeFor}), and the variables that had no value.
 *
 * @example
 * const { parts } = noticeParts(node.message, scope);
 */
export function noticeParts(
  message: { subject?: string; body: string },
  scope: TemplateScope,
): { parts: NoticeParts; missing: string[] } {
  const body = renderTemplateParts(message.body, scope, ['employee']);
  const subject = message.subject === undefined ? undefined : renderTemplateParts(message.subject, scope, ['employee']);
  return {
    parts: subject ? { subject: subject.parts, body: body.parts } : { body: body.parts },
    missing: [...(subject?.missing ?? []), ...body.missing],
  };
}

/**
 * A notice's text for one employee: the parts with `{{ employee.* }}` read from them.
 *
 * @example
 * noticeFor(parts, { id: 'emp_ann', name: 'Ann', email: 'ann@corp.test' }); // { subject: 'For Ann', body: '...' }
 */
export function noticeFor(parts: NoticeParts, employee: TemplateEmployee): { subject?: string; body: string } {
  const scope = { employee };
  const body = finishTemplate(parts.body, scope);
  return parts.subject ? { subject: finishTemplate(parts.subject, scope), body } : { body };
}

/** The engine's handlers of the employee nodes (spread into the handler table of nodes.ts). */
export const employeeHandlers = {
  assign_owner: {
    run: (node: AssignOwnerNode, step: Step, key: string): Outcome => {
      let employees: string[];
      let words: string;
      if (node.mode === 'fixed') {
        employees = [node.employee];
        words = node.employee;
      } else if (node.mode === 'round_robin') {
        employees = node.employees;
        words = `the next in turn of ${node.employees.join(', ')}`;
      } else {
        const seen: string[] = [];
        const hit = node.cases.findIndex((c, i) => {
          const d = decideRule(c.rule, step.facts, step.now);
          seen.push(`case ${i}${c.name ? ` "${c.name}"` : ''}: ${decisionWords(d)}`);
          return d.result;
        });
        const chosen = hit >= 0 ? node.cases[hit]!.employee : node.otherwise;
        if (chosen === undefined) return { go: 'next', reason: `no case holds, nobody assigned (${seen.join(' | ')})` };
        employees = [chosen];
        words = `${chosen} (${hit >= 0 ? seen[hit] : `no case holds: otherwise`})`;
      }
      step.effects.push({
        type: 'assign_owner',
        key,
        node: node.id,
        mode: node.mode,
        employees,
        keepExisting: node.keepExisting ?? false,
      });
      return {
        go: 'next',
        reason: `assign the lead owner: ${words}${node.keepExisting ? ' (unless the person has one)' : ''}`,
        values: { key, employees },
      };
    },
  },
  notify_employees: {
    run: (node: NotifyEmployeesNode, step: Step, key: string): Outcome => {
      const { parts, missing } = noticeParts(node.message, scopeOf(step));
      const body = { text: finishTemplate(parts.body, {}) };
      const subject = parts.subject && { text: finishTemplate(parts.subject, {}) };
      const effect: NotifyEmployeesEffect = {
        type: 'notify_employees',
        key,
        node: node.id,
        who: node.who,
        supervisorLevels: node.supervisorLevels ?? 1,
        destination: node.destination,
        message: subject ? { subject: subject.text, body: body.text } : { body: body.text },
        template: { ...node.message },
      };
      if (readsEmployee(node.message)) effect.parts = parts;
      const employee = readsEvent(node) ? eventEmployeeOf(node, step.state.event) : undefined;
      if (employee !== undefined) effect.eventEmployee = employee;
      step.effects.push(effect);
      const noEmployee = readsEvent(node) && employee === undefined;
      return {
        go: 'next',
        reason: [
          `notify ${node.who.join(', ')} through ${node.destination}`,
          employee === undefined ? '' : `event's employee ${employee}`,
          noEmployee ? `the event names no employee at ${node.eventEmployee ?? DEFAULT_EMPLOYEE_PATH}` : '',
          missing.length ? `no value for ${missing.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; '),
        values: { key },
      };
    },
  },
};

/** What the flow-wide walks (templates, event paths, rules, validation) need of an employee node. */
export type EmployeeNode = AssignOwnerNode | NotifyEmployeesNode;

/**
 * The templates of an employee node and the event paths it reads (for the trimmed trigger event).
 *
 * @example
 * const { texts, eventPaths } = employeeNodeReads(node);
 */
export function employeeNodeReads(n: EmployeeNode): { texts: string[]; eventPaths: string[][] } {
  if (n.type !== 'notify_employees') return { texts: [], eventPaths: [] };
  return {
    texts: [n.message.body, ...(n.message.subject === undefined ? [] : [n.message.subject])],
    eventPaths: readsEvent(n) ? [(n.eventEmployee ?? DEFAULT_EMPLOYEE_PATH).split('.')] : [],
  };
}

/** An employee id a node names, and where. */
export interface EmployeeReference {
  node: string;
  /** Its JSON path in the definition: `nodes.2.employees.1`. */
  path: string;
  employee: string;
}

/**
 * The employee ids a flow's nodes name (`assign_owner`: the fixed one, the round robin's, each rule
 * case's and `otherwise`), for the server to check against its directory (`notify_employees` names
 * none: it reaches employees through the person and the event).
 *
 * @example
 * employeeReferences(def); // [{ node: 'owner', path: 'nodes.0.employee', employee: 'emp_ann' }]
 */
export function employeeReferences(def: FlowDefinition): EmployeeReference[] {
  const out: EmployeeReference[] = [];
  def.nodes.forEach((n, i) => {
    if (n.type !== 'assign_owner') return;
    const add = (field: string, employee: string) => {
      out.push({ node: n.id, path: `nodes.${i}.${field}`, employee });
    };
    if (n.mode === 'fixed') add('employee', n.employee);
    else if (n.mode === 'round_robin') for (const [j, e] of n.employees.entries()) add(`employees.${j}`, e);
    else {
      for (const [j, c] of n.cases.entries()) add(`cases.${j}.employee`, c.employee);
      if (n.otherwise !== undefined) add('otherwise', n.otherwise);
    }
  });
  return out;
}

/**
 * The profile rules of an employee node (an `assign_owner` by rule), for the facts the runner loads.
 *
 * @example
 * employeeNodeRules(node); // [{ op: 'trait', trait: 'country', cmp: '=', value: 'DE' }]
 */
export function employeeNodeRules(n: EmployeeNode): Rule[] {
  return n.type === 'assign_owner' && n.mode === 'rule' ? n.cases.map((c) => c.rule) : [];
}

/**
 * What is wrong with an employee node beyond its structure (checked by `validateFlow`): a `who` that
 * needs a trigger event without one, `supervisors` twice over nothing, an unknown destination; the
 * templates are checked by the caller with `templates`.
 *
 * @example
 * employeeNodeIssues(node, { eventTrigger: false, destinations: ['mail'] }); // [{ field: 'who', message }]
 */
export function employeeNodeIssues(
  n: EmployeeNode,
  known: { eventTrigger: boolean; destinations?: readonly string[] },
): { field: string; message: string }[] {
  const issues: { field: string; message: string }[] = [];
  if (n.type === 'assign_owner') {
    if (n.mode === 'round_robin' && new Set(n.employees).size !== n.employees.length)
      issues.push({ field: 'employees', message: 'an employee is listed twice' });
    return issues;
  }
  if (new Set(n.who).size !== n.who.length) issues.push({ field: 'who', message: 'a recipient is listed twice' });
  if (readsEvent(n) && !known.eventTrigger)
    issues.push({
      field: 'who',
      message: "the event's employee needs an event trigger (the trigger is not an event)",
    });
  if (known.destinations && !known.destinations.includes(n.destination))
    issues.push({ field: 'destination', message: `unknown destination "${n.destination}"` });
  return issues;
}
