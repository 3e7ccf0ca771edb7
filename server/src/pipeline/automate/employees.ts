import {
  type AssignOwnerEffect,
  finishTemplate,
  type JsonObject,
  type JsonValue,
  type NotifyEmployeesEffect,
  noticeFor,
  noticeParts,
  type ProfileFacts,
  type StepResult,
} from '@cairn/core';
import type { Tx } from '../../db/index.ts';
import { type EmployeeRow, employeesByIds, linkEmployee, linksOf, supervisorChain } from '../../employees/queries.ts';
import type { Logger } from '../../log.ts';
import { maskPayload, maskValue, type Pii } from '../../pii/index.ts';
import type { RequestedMessage } from '../topics.ts';

// The employee nodes' effects (packages/core/src/flows/employees.ts), in the step's transaction:
// `assign_owner` links the employee as the person's lead owner (round robin takes the next turn of the
// node's counter row), then `notify_employees` resolves who to reach from the directory and the links
// as they are after those assignments and hands one message per employee to stage 5, keyed
// `flow:<run>:<node>:<iteration>:<employee>` and addressed to the employee (`to`), not the person.

/** One step's employee effect, with its run. */
export interface EmployeeWork {
  effect: AssignOwnerEffect | NotifyEmployeesEffect;
  profileId: string;
  sourceId: string | null;
  flow: { id: string; version: number; runId: string };
}

/** What an employee notice's ledger row carries (sealed): the message and its recipient. */
export interface EmployeeNotice {
  subject?: string;
  body: string;
  to: { id: string; name: string; email?: string; chatHandle?: string };
}

/**
 * Renders each `notify_employees` effect of a step once more with the person's sensitive values masked
 * (traits as `maskValue` shows them to callers without pii:read, the trigger event's sensitive fields as
 * `maskPayload` does): what an employee whose role is `masked` gets.
 *
 * @example
 * const result = withMaskedNotices(advance(def, state, input, ctx), profile, pii);
 */
export function withMaskedNotices(
  result: StepResult,
  profile: ProfileFacts,
  pii: Pick<Pii, 'isSensitive'>,
): StepResult {
  if (!result.effects.some((e) => e.type === 'notify_employees')) return result;
  const traits = Object.fromEntries(
    Object.entries(profile.traits).map(([k, v]) => [k, pii.isSensitive(k) ? (maskValue(v) as JsonValue) : v]),
  );
  const event = result.state.event && maskPayload(result.state.event as JsonObject, pii.isSensitive);
  const scope = {
    traits,
    run: result.state.data,
    profile: { id: profile.id },
    ...(profile.computed ? { computed: profile.computed } : {}),
    ...(event ? { event } : {}),
  };
  const effects = result.effects.map((e) => {
    if (e.type !== 'notify_employees') return e;
    // `{{ employee.* }}` stays for each employee reached (their name is not the person's data).
    const { parts } = noticeParts(e.template, scope);
    const body = finishTemplate(parts.body, {});
    const subject = parts.subject && finishTemplate(parts.subject, {});
    const masked = subject === undefined ? { body } : { subject, body };
    return { ...e, masked, ...(e.parts ? { maskedParts: parts } : {}) };
  });
  return { ...result, effects };
}

async function assign(tx: Tx, w: EmployeeWork, e: AssignOwnerEffect, log: Pick<Logger, 'info'>): Promise<void> {
  if (e.keepExisting && (await linksOf(tx, [w.profileId])).get(w.profileId)?.length) return;
  const known = await employeesByIds(tx, e.employees);
  const candidates = e.employees.filter((id) => known.get(id)?.active);
  if (!candidates.length) {
    log.info(`flow ${w.flow.id} ${e.node}: no active employee among ${e.employees.join(', ')}; nobody assigned`);
    return;
  }
  let chosen = candidates[0]!;
  if (e.mode === 'round_robin') {
    // The counter row is locked until the step commits: concurrent steps take turns one after another.
    const [row] = await tx<{ turns: string }[]>`
      INSERT INTO flow_round_robin (flow_id, node, turns) VALUES (${w.flow.id}, ${e.node}, 1)
      ON CONFLICT (flow_id, node) DO UPDATE SET turns = flow_round_robin.turns + 1
      RETURNING turns`;
    chosen = candidates[(Number(row!.turns) - 1) % candidates.length]!;
  }
  await linkEmployee(tx, w.profileId, chosen, { first: true });
}

// Who one notice reaches, in order, each once: the event's employee, the lead owner, every linked one,
// then the supervisors of those (of the event's employee when `supervisors` is alone).
async function recipients(tx: Tx, w: EmployeeWork, e: NotifyEmployeesEffect): Promise<string[]> {
  const links = ((await linksOf(tx, [w.profileId])).get(w.profileId) ?? []).map((l) => l.employeeId);
  const base: string[] = [];
  if (e.who.includes('event_employee') && e.eventEmployee) base.push(e.eventEmployee);
  if (e.who.includes('lead_owner') && links[0]) base.push(links[0]);
  if (e.who.includes('linked')) base.push(...links);
  const out = [...base];
  if (e.who.includes('supervisors')) {
    const of = e.who.length === 1 ? (e.eventEmployee ? [e.eventEmployee] : []) : base;
    for (const id of [...new Set(of)]) out.push(...(await supervisorChain(tx, id, e.supervisorLevels)));
  }
  return [...new Set(out)];
}

function noticeOf(e: NotifyEmployeesEffect, employee: EmployeeRow): EmployeeNotice | undefined {
  const to = {
    id: employee.id,
    name: employee.name,
    ...(employee.email ? { email: employee.email } : {}),
    ...(employee.chatHandle ? { chatHandle: employee.chatHandle } : {}),
  };
  const full = employee.role === 'full';
  // A message reading {{ employee.* }} is finished for this employee, from the parts their role may see.
  const parts = full ? e.parts : e.maskedParts;
  const message = e.parts ? parts && noticeFor(parts, to) : full ? e.message : e.masked;
  // Never the clear message for want of the masked one.
  if (!message) return undefined;
  return { ...message, to };
}

/**
 * Performs a transaction's employee effects in step order — assignments, then the notices they may
 * change — and returns the notices as messages for stage 5 (sealed), one per employee reached.
 * Employees that are unknown or inactive are passed over (logged).
 *
 * @example
 * const messages = await employeeEffects(tx, deps, work);
 */
export async function employeeEffects(
  tx: Tx,
  deps: { pii: Pick<Pii, 'sealBytes'>; log: Pick<Logger, 'info'> },
  work: readonly EmployeeWork[],
): Promise<RequestedMessage[]> {
  const out: RequestedMessage[] = [];
  for (const w of work) if (w.effect.type === 'assign_owner') await assign(tx, w, w.effect, deps.log);
  for (const w of work) {
    const e = w.effect;
    if (e.type !== 'notify_employees') continue;
    const ids = await recipients(tx, w, e);
    const known = await employeesByIds(tx, ids);
    for (const id of ids) {
      const employee = known.get(id);
      const notice = employee?.active ? noticeOf(e, employee) : undefined;
      if (!employee?.active || !notice) {
        deps.log.info(
          `flow ${w.flow.id} ${e.node}: employee ${id} is ${employee ? 'inactive' : 'unknown'}; not notified`,
        );
        continue;
      }
      out.push({
        key: `${e.key}:${id}`,
        destinationId: e.destination,
        profileId: w.profileId,
        sourceId: w.sourceId,
        flow: { ...w.flow, node: e.node },
        sealed: deps.pii.sealBytes(Buffer.from(JSON.stringify(notice))),
        employee: id,
      });
    }
  }
  return out;
}
