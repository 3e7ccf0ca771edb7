import { renderTemplate } from '../flows/template.ts';
import type { TraitQualityRules } from './rules.ts';

// The part of a profile state fills read and write (structural: profile/traits.ts imports this file).
interface FilledValue {
  readonly value: unknown;
  readonly ts: number;
  readonly eventId: string;
  readonly source: string;
}
interface FillState {
  readonly traits: Map<string, FilledValue>;
}

const same = (a: unknown, b: unknown) => a === b || JSON.stringify(a) === JSON.stringify(b);

/**
 * Fills missing traits after an event is folded in: a trait that no event set (absent, or derived
 * before) gets its rule's default or its template rendered over the other traits, with source
 * `derived` and the position of the event that caused it. A template whose inputs are missing
 * (a variable with no value and no `| default`) removes the derived value. A value set by an event
 * always wins; when it is unset the fill takes over again. Unchanged values are left as they are.
 *
 * @example
 * applyFills(state, rules, { ts: event.ts, eventId: event.id });
 */
export function applyFills(state: FillState, rules: TraitQualityRules, at: { ts: number; eventId: string }): void {
  for (const f of rules.fills) {
    const current = state.traits.get(f.key);
    if (current && current.source !== 'derived') continue;
    let value: unknown;
    if ('default' in f.fill) value = f.fill.default;
    else {
      const traits: Record<string, unknown> = {};
      for (const k of f.inputs) {
        const t = state.traits.get(k);
        if (t) traits[k] = t.value;
      }
      const r = renderTemplate(f.fill.template, { traits: traits as never, run: {}, profile: { id: '' } });
      value = r.missing.length ? undefined : r.text;
    }
    if (value === undefined || value === null || value === '') {
      if (current) state.traits.delete(f.key);
      continue;
    }
    if (current && same(current.value, value)) continue;
    const next: FilledValue = { value, ts: at.ts, eventId: at.eventId, source: 'derived' };
    state.traits.set(f.key, next);
  }
}
