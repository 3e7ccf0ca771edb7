/**
 * The shapes of the employee nodes and their effects (employees.ts runs them): no imports from the
 * rest of the engine, so ast.ts and state.ts can name them.
 */
import type { Rule } from '../rules/ast.ts';

/** Who a `notify_employees` node reaches. */
export type NotifyWho = 'event_employee' | 'supervisors' | 'linked' | 'lead_owner';

/**
 * Makes an employee the person's lead owner (first of their linked employees; others stay linked
 * after). `fixed`: one employee; `round_robin`: the next of `employees` in turn, across runs (inactive
 * ones passed over); `rule`: the employee of the first case whose rule holds on the person, else
 * `otherwise` (none: nobody is assigned). `keepExisting`: a person who has a lead owner keeps them.
 */
export type AssignOwnerNode = { id: string; name?: string; type: 'assign_owner'; keepExisting?: boolean } & (
  | { mode: 'fixed'; employee: string }
  | { mode: 'round_robin'; employees: string[] }
  | { mode: 'rule'; cases: { rule: Rule; employee: string; name?: string }[]; otherwise?: string }
);

/**
 * Sends a message about the person to employees through `destination`, one per employee, addressed to
 * them (the destination's recipient is the employee, not the person). `who`: `event_employee` (the
 * employee id at `eventEmployee` in the trigger event, default `properties.employee_id`), `linked`
 * (all the person's linked employees), `lead_owner` (the first linked), `supervisors` (the supervisors,
 * up to `supervisorLevels` up, default 1, of the employees the other entries select; alone: of the
 * event's employee). The person's sensitive traits are masked unless the employee's role shows them.
 */
export interface NotifyEmployeesNode {
  id: string;
  name?: string;
  type: 'notify_employees';
  who: NotifyWho[];
  supervisorLevels?: number;
  eventEmployee?: string;
  destination: string;
  message: { subject?: string; body: string };
}

/** What an `assign_owner` node asks the runner: `employees` are the candidates (one unless round robin). */
export interface AssignOwnerEffect {
  type: 'assign_owner';
  key: string;
  node: string;
  mode: AssignOwnerNode['mode'];
  employees: string[];
  keepExisting: boolean;
}

/**
 * What a `notify_employees` node asks the runner. `message` is rendered with the person's values;
 * `template` is the node's, for the runner to render again with sensitive values masked (`masked`,
 * which the runner fills). Each employee's message is keyed `<key>:<employee id>`.
 */
export interface NotifyEmployeesEffect {
  type: 'notify_employees';
  key: string;
  node: string;
  who: NotifyWho[];
  supervisorLevels: number;
  /** The employee id the trigger event names, when `who` has `event_employee` or `supervisors` alone. */
  eventEmployee?: string;
  destination: string;
  message: { subject?: string; body: string };
  template: { subject?: string; body: string };
  masked?: { subject?: string; body: string };
  /**
   * When the message reads `{{ employee.* }}` (the employee it is addressed to): the message rendered
   * with the person's values, the employee's variables left in place for the runner to fill once per
   * employee (`message` then shows them as their defaults). `maskedParts`: the same with the person's
   * sensitive values masked (the runner fills it, as `masked`).
   */
  parts?: NoticeParts;
  maskedParts?: NoticeParts;
}

/** A notice rendered but for its `{{ employee.* }}` variables (template.ts `TemplatePart`s). */
export interface NoticeParts {
  subject?: NoticePart[];
  body: NoticePart[];
}

/** Text, or a variable still to render: `{ root: 'employee', path: ['name'], fallback? }`. */
export type NoticePart = string | { source: string; root: string; path: string[]; fallback?: string };
