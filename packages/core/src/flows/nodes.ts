/**
 * What each node type does, one small entry per type: `run` when a run enters the node, and for the
 * types that wait, how they resume (a timer, an event, an effect's result).
 */
import { compareValue, matchEvent } from '../rules/evaluate.ts';
import { valueAt } from '../rules/values.ts';
import type { FlowNode, JsonValue, NodeType } from './ast.ts';
import { couponHandlers } from './coupons.ts';
import { employeeHandlers } from './employees.ts';
import { experimentHandler } from './experiment.ts';
import { type Decision, decideData, decideRule, decisionWords, type StoredEvent } from './facts.ts';
import { governSend } from './governance.ts';
import { splitBucket, splitPath } from './split.ts';
import type { Effect, Outcome, Step } from './state.ts';
import { renderJson, renderTemplate, scopeOf } from './template.ts';
import { dateTraitTime, describeDuration, durationMs, localIso, nextLocalTime } from './time.ts';

type Of<T extends NodeType> = Extract<FlowNode, { type: T }>;

interface Handler<T extends NodeType> {
  run(node: Of<T>, step: Step, key: string): Outcome;
  /** The run's `due` came while it waited here (`key`: the effect key of this visit). */
  due?(node: Of<T>, step: Step, key: string): Outcome;
  /** An event arrived while it waited here: an outcome when it moves the run. */
  event?(node: Of<T>, step: Step, event: StoredEvent): Outcome | undefined;
  /** The awaited effect's result. */
  result?(node: Of<T>, step: Step, result: { ok: true; output?: unknown } | { ok: false; error: string }): Outcome;
}

const local = (step: Step, ms: number) => localIso(ms, step.zone.zone);

function keepFields(keep: Record<string, string> | undefined, from: unknown): Record<string, JsonValue> {
  const kept: Record<string, JsonValue> = {};
  for (const [field, path] of Object.entries(keep ?? {})) {
    const v = valueAt(from, path.split('.'));
    if (v !== undefined) kept[field] = v as JsonValue;
  }
  return kept;
}

function waitUntil(step: Step, due: number, what: string): Outcome {
  if (due <= step.now) return { go: 'next', reason: `${what}: ${local(step, due)} has come`, values: { due } };
  return { wait: { due }, reason: `${what}: until ${local(step, due)} (${step.zone.zone}, from ${step.zone.source})` };
}

/**
 * A wait until a date trait ± days (at a local time), decided on the trait as it is now.
 *
 * @example
 * untilTrait({ trait: 'expires_at', offsetDays: -3, time: '09:00' }, step);
 */
export function untilTrait(u: { trait: string; offsetDays?: number; time?: string }, step: Step): Outcome {
  const value = step.facts.traits[u.trait];
  const at = dateTraitTime(value, u, step.zone.zone);
  const offset = u.offsetDays ? ` ${u.offsetDays > 0 ? '+' : ''}${u.offsetDays} days` : '';
  if (at === undefined)
    return {
      go: 'missing',
      reason: `${u.trait} is not a date (${JSON.stringify(value ?? null)})`,
      values: { [u.trait]: value ?? null },
    };
  return waitUntil(step, at, `${u.trait}${offset}${u.time ? ` at ${u.time}` : ''}`);
}

function awaited(
  step: Step,
  node: { keep?: Record<string, string> },
  result: Parameters<NonNullable<Handler<'webhook'>['result']>>[2],
): Outcome {
  if (!result.ok) return { go: 'failed', reason: `failed: ${result.error}` };
  const kept = keepFields(node.keep, result.output);
  Object.assign(step.state.data, kept);
  return {
    go: 'next',
    reason: Object.keys(kept).length ? `kept ${Object.keys(kept).join(', ')}` : 'done',
    values: kept,
  };
}

// A send: the exit rule first, then caps and quiet hours (governance.ts), then the message.
function send(node: Of<'send'>, step: Step, key: string): Outcome {
  if (step.def.exit) {
    const d = decideRule(step.def.exit.rule, step.facts, step.now);
    if (d.result) return { end: 'exited', reason: `exit condition holds before the send: ${decisionWords(d)}` };
  }
  const verdict = governSend(node, step.facts, step.now, step.zone.zone);
  if (!verdict.ok) {
    // Quiet hours always defer (to their end, where caps are checked again); a full cap as the node says.
    const skip = node.onCap === 'skip' && verdict.held === 'capped';
    if (skip) return { go: 'next', as: 'capped', reason: `not sent: ${verdict.reason}`, values: verdict.values };
    const due = node.onCap === 'skip' ? verdict.quietEnd! : verdict.until;
    return {
      wait: { due },
      reason: `deferred until ${local(step, due)}: ${verdict.reason}`,
      values: { ...verdict.values, deferred: due },
    };
  }
  const scope = scopeOf(step);
  const body = renderTemplate(node.message.body, scope);
  const subject = node.message.subject === undefined ? undefined : renderTemplate(node.message.subject, scope);
  const message = {
    ...(subject ? { subject: subject.text } : {}),
    body: body.text,
    ...(node.message.track === false ? { track: false } : {}),
  };
  step.effects.push({ type: 'send', key, node: node.id, destination: node.destination, message });
  // A later send of this step counts this one (the caller's facts get it after the step: noteSends).
  if (verdict.channel !== undefined) {
    const sent = {
      at: step.now,
      channel: verdict.channel,
      key,
      ...(node.transactional ? { transactional: true } : {}),
    };
    step.facts = { ...step.facts, sends: [...(step.facts.sends ?? []), sent] };
  }
  const missing = [...(subject?.missing ?? []), ...body.missing];
  // A governed send names its destination and channel: the runner counts it from the journal (people.ts).
  const values: Record<string, unknown> =
    verdict.channel === undefined ? { key } : { key, destination: node.destination, channel: verdict.channel };
  if (node.transactional) values.transactional = true;
  return {
    go: 'next',
    reason: `send through ${node.destination}${missing.length ? `; no value for ${missing.join(', ')}` : ''}`,
    values,
  };
}

const handlers: { [T in NodeType]: Handler<T> } = {
  wait: {
    run: (node, step) => {
      const due = step.now + durationMs(node.duration);
      return { wait: { due }, reason: `wait ${describeDuration(node.duration)}, until ${local(step, due)}` };
    },
    due: (node) => ({ go: 'next', reason: `waited ${describeDuration(node.duration)}` }),
  },
  wait_until: {
    run: (node, step) => {
      const u = node.until;
      if ('trait' in u) return untilTrait(u, step);
      const days = u.weekdays?.length ? ` on ${u.weekdays.join(', ')}` : '';
      return waitUntil(step, nextLocalTime(step.now, step.zone.zone, u.time, u.weekdays), `${u.time}${days}`);
    },
    // The trait is read again: a date moved later keeps the run waiting, a date removed takes `missing`.
    due: (node, step) =>
      'trait' in node.until ? untilTrait(node.until, step) : { go: 'next', reason: 'the time came' },
  },
  wait_for_event: {
    run: (node, step) => {
      const due = step.now + durationMs(node.timeout);
      step.state.since = step.now;
      return {
        wait: { due, listen: true },
        reason: `wait for an event, at most ${describeDuration(node.timeout)} (until ${local(step, due)})`,
      };
    },
    due: (node) => ({ go: 'timeout', reason: `no matching event within ${describeDuration(node.timeout)}` }),
    event: (node, step, event) => {
      if (!matchEvent(node.event, event, step.now)) return undefined;
      for (const m of node.match ?? []) {
        const want = step.state.data[m.run];
        const got = valueAt(event, m.field.split('.'));
        const same = typeof want === 'string' || typeof want === 'number' || typeof want === 'boolean';
        if (!same || !compareValue(got, { cmp: '=', value: want }, step.now)) return undefined;
      }
      const kept = keepFields(node.keep, event);
      Object.assign(step.state.data, kept);
      const matched = (node.match ?? []).map(
        (m) => `${m.field} = run.${m.run} (${JSON.stringify(step.state.data[m.run])})`,
      );
      return {
        go: 'matched',
        reason: `event ${JSON.stringify(event.event ?? event.name ?? event.type)} arrived${matched.length ? ` with ${matched.join(', ')}` : ''}`,
        values: kept,
      };
    },
  },
  branch: {
    run: (node, step) => {
      const seen: string[] = [];
      for (const [i, c] of node.cases.entries()) {
        const parts: Decision[] = [];
        if (c.rule) parts.push(decideRule(c.rule, step.facts, step.now));
        if (c.data) parts.push(decideData(c.data, { run: step.state.data, event: step.state.event }, step.now));
        const holds = parts.every((p) => p.result);
        const words = `case ${i}${c.name ? ` "${c.name}"` : ''}: ${parts.map(decisionWords).join('; ')}`;
        if (holds) return { go: `case:${i}`, reason: words, values: { case: i } };
        seen.push(words);
      }
      return { go: 'else', reason: `no case holds (${seen.join(' | ')})` };
    },
  },
  split: {
    run: (node, step) => {
      const bucket = splitBucket(step.state.flowId, node.id, step.state.profileId);
      const path = splitPath(
        bucket,
        node.paths.map((p) => p.percent),
      );
      const p = node.paths[path]!;
      return {
        go: `path:${path}`,
        reason: `path ${path}${p.name ? ` "${p.name}"` : ''} (${p.percent}%): bucket ${bucket} of 10000`,
        values: { bucket },
      };
    },
  },
  experiment: { run: experimentHandler.run, due: experimentHandler.due },
  send: {
    run: (node, step, key) => send(node, step, key),
    // Deferred by a cap or quiet hours: decided again (the exit rule, the caps) now.
    due: (node, step, key) => send(node, step, key),
  },
  update_profile: {
    run: (node, step, key) => {
      const scope = scopeOf(step);
      const set = renderJson((node.set ?? {}) as JsonValue, scope) as Record<string, JsonValue>;
      const effect: Effect = {
        type: 'update_profile',
        key,
        node: node.id,
        set,
        unset: node.unset ?? [],
        addTags: node.addTags ?? [],
        removeTags: node.removeTags ?? [],
      };
      step.effects.push(effect);
      // Later nodes of this step see the change; the runner's next step reads it from the profile.
      const traits = { ...step.facts.traits, ...set };
      for (const t of effect.unset) delete traits[t];
      const tags = new Set(step.facts.tags);
      for (const t of effect.addTags) tags.add(t);
      for (const t of effect.removeTags) tags.delete(t);
      step.facts = { ...step.facts, traits, tags: [...tags] };
      const words = [
        Object.keys(set).length ? `set ${Object.keys(set).join(', ')}` : '',
        effect.unset.length ? `unset ${effect.unset.join(', ')}` : '',
        effect.addTags.length ? `tag ${effect.addTags.join(', ')}` : '',
        effect.removeTags.length ? `untag ${effect.removeTags.join(', ')}` : '',
      ].filter(Boolean);
      return { go: 'next', reason: words.join('; ') || 'nothing to change', values: { key, set } };
    },
  },
  webhook: {
    run: (node, step, key) => {
      const scope = scopeOf(step);
      const headers = Object.fromEntries(
        Object.entries(node.headers ?? {}).map(([k, v]) => [k, renderTemplate(v, scope).text]),
      );
      const effect: Effect & { type: 'webhook' } = {
        type: 'webhook',
        key,
        node: node.id,
        url: renderTemplate(node.url, scope).text,
        method: node.method,
        headers,
      };
      if (node.body !== undefined) effect.body = renderTemplate(node.body, scope).text;
      return { await: effect, reason: `${node.method} ${effect.url}` };
    },
    result: (node, step, result) => awaited(step, node, result),
  },
  action: {
    run: (node, step, key) => {
      const input = renderJson((node.input ?? {}) as JsonValue, scopeOf(step)) as Record<string, JsonValue>;
      const effect: Effect & { type: 'action' } = {
        type: 'action',
        key,
        node: node.id,
        destination: node.destination,
        action: node.action,
        input,
      };
      return { await: effect, reason: `${node.action} through ${node.destination}` };
    },
    result: (node, step, result) => awaited(step, node, result),
  },
  ...employeeHandlers,
  ...couponHandlers,
  exit: {
    run: () => ({ end: 'completed', reason: 'reached an exit' }),
  },
};

/**
 * The handler of a node's type.
 *
 * @example
 * handlerOf(node).run(node, step, key);
 */
export function handlerOf(node: FlowNode): Handler<NodeType> {
  return handlers[node.type] as unknown as Handler<NodeType>;
}
