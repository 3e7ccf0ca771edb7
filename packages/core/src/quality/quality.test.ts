import { describe, expect, it } from 'vitest';
import { emptyProfileState, foldEvents, type TraitEvent } from '../profile/traits.ts';
import { normalizeCountry, normalizeDateValue, normalizeValue } from './normalize.ts';
import { compileTraitRules, TraitQualityRuleSchema } from './rules.ts';

const identify = (id: string, ts: number, traits: Record<string, unknown>): TraitEvent => ({
  id,
  ts,
  type: 'identify',
  payload: { traits: traits as never },
});

describe('normalisers', () => {
  it('reads one day written in five layouts as the same ISO-8601 date', () => {
    for (const raw of ['1990-12-31', '31.12.1990', '31/12/1990', 'December 31, 1990', '31 Dec 1990']) {
      expect(normalizeDateValue(raw), raw).toEqual({ ok: true, value: '1990-12-31' });
    }
    expect(normalizeDateValue('12/31/1990', { dayFirst: false })).toEqual({ ok: true, value: '1990-12-31' });
    expect(normalizeDateValue('Tue, 01 Jan 2030 10:00:00 +0100')).toEqual({
      ok: true,
      value: '2030-01-01T09:00:00.000Z',
    });
    expect(normalizeDateValue(0)).toEqual({ ok: true, value: '1970-01-01T00:00:00.000Z' });
    expect(normalizeDateValue('2023-02-30').ok).toBe(false);
    expect(normalizeDateValue('soon').ok).toBe(false);
    expect(normalizeDateValue({ y: 1 }).ok).toBe(false);
  });

  it('reads a country in several spellings and languages as its alpha-2 code', () => {
    for (const raw of ['Germany', 'germany', ' GERMANY ', 'DE', 'de', 'DEU', '276']) {
      expect(normalizeCountry(raw), raw).toEqual({ ok: true, value: 'DE' });
    }
    expect(normalizeCountry('Deutschland').ok).toBe(false);
    expect(normalizeCountry('Deutschland', ['en', 'de'])).toEqual({ ok: true, value: 'DE' });
    expect(normalizeCountry('Allemagne', ['fr'])).toEqual({ ok: true, value: 'DE' });
    for (const raw of ["Côte d'Ivoire", 'Ivory Coast'])
      expect(normalizeCountry(raw)).toEqual({ ok: true, value: 'CI' });
    for (const raw of ['Türkiye', 'Turkey', 'turkiye'])
      expect(normalizeCountry(raw)).toEqual({ ok: true, value: 'TR' });
    expect(normalizeCountry('United States of America')).toEqual({ ok: true, value: 'US' });
    expect(normalizeCountry('Atlantis')).toMatchObject({ ok: false, reason: expect.stringContaining('Atlantis') });
    expect(normalizeCountry('ZZ').ok).toBe(false);
  });

  it('applies steps in order and is idempotent on its own output', () => {
    const steps = [{ op: 'trim' as const }, { op: 'lower' as const }];
    expect(normalizeValue(steps, '  Ann ')).toEqual({ ok: true, value: 'ann' });
    expect(normalizeValue([{ op: 'phone' }], '020 7946 0018', '44')).toEqual({ ok: true, value: '+442079460018' });
    expect(normalizeValue([{ op: 'phone' }], '020 7946 0018').ok).toBe(false);
    for (const [steps, raw] of [
      [[{ op: 'date' }], '31.12.1990 '],
      [[{ op: 'date' }], 'Tue, 01 Jan 2030 10:00:00 +0100'],
      [[{ op: 'country', languages: ['de'] }], 'Österreich'],
    ] as const) {
      const once = normalizeValue(steps as never, raw);
      expect(once.ok).toBe(true);
      expect(normalizeValue(steps as never, once.ok ? once.value : null)).toEqual(once);
    }
  });
});

describe('rule JSON', () => {
  it('refuses hostile or meaningless rules with a reason', () => {
    const bad = [
      {},
      { normalize: [{ op: 'shout' }] },
      { normalize: [{ op: 'country', languages: ['xx'] }] },
      { normalize: 'trim' },
      { fill: { template: 'Hi {{ event.name }}' } },
      { fill: { template: 'Hi {{ traits.name' } },
      { fill: { template: 'no variables' } },
      { fill: { default: 1, template: '{{ traits.a }}' } },
      { fill: { default: null } },
      { normalize: [{ op: 'trim', extra: true }] },
    ];
    for (const rule of bad) {
      const r = TraitQualityRuleSchema.safeParse(rule);
      expect(r.success, JSON.stringify(rule)).toBe(false);
      expect(r.error?.issues[0]?.message).toBeTruthy();
    }
    expect(TraitQualityRuleSchema.parse({ normalize: [{ op: 'date', dayFirst: false }] })).toEqual({
      normalize: [{ op: 'date', dayFirst: false }],
      fill: null,
    });
  });
});

describe('the fold with rules', () => {
  const rules = compileTraitRules({
    country: { normalize: [{ op: 'country' }], fill: null },
    birthday: { normalize: [{ op: 'date' }], fill: null },
    full_name: { normalize: [], fill: { template: '{{ traits.first_name }} {{ traits.last_name }}' } },
    plan: { normalize: [], fill: { default: 'free' } },
  });

  it('normalises what it can and keeps a failing value as received', () => {
    const state = emptyProfileState();
    foldEvents(state, [identify('1', 1000, { country: 'germany', birthday: '31.12.1990', note: 'x' })], { rules });
    expect(state.traits.get('country')?.value).toBe('DE');
    expect(state.traits.get('birthday')?.value).toBe('1990-12-31');
    foldEvents(state, [identify('2', 2000, { country: 'Atlantis', birthday: 'soon' })], { rules });
    expect(state.traits.get('country')?.value).toBe('Atlantis');
    expect(state.traits.get('birthday')?.value).toBe('soon');
  });

  it('derives filled traits, recomputes them when their inputs change, and lets a real value win', () => {
    const state = emptyProfileState();
    foldEvents(state, [identify('1', 1000, { first_name: 'Ann' })], { rules });
    expect(state.traits.get('plan')).toMatchObject({ value: 'free', source: 'derived', eventId: '1' });
    expect(state.traits.has('full_name')).toBe(false); // last_name missing
    foldEvents(state, [identify('2', 2000, { last_name: 'Lee' })], { rules });
    expect(state.traits.get('full_name')).toMatchObject({ value: 'Ann Lee', source: 'derived', eventId: '2' });
    foldEvents(state, [identify('3', 3000, { last_name: 'Smith' })], { rules });
    expect(state.traits.get('full_name')).toMatchObject({ value: 'Ann Smith', source: 'derived', eventId: '3' });
    foldEvents(state, [identify('4', 4000, { full_name: 'Dr Ann Smith', plan: 'pro' })], { rules });
    expect(state.traits.get('full_name')).toMatchObject({ value: 'Dr Ann Smith', source: 'identify' });
    expect(state.traits.get('plan')).toMatchObject({ value: 'pro', source: 'identify' });
    foldEvents(state, [identify('5', 5000, { $unset: ['plan', 'full_name'] })], { rules });
    expect(state.traits.get('plan')).toMatchObject({ value: 'free', source: 'derived' });
    expect(state.traits.get('full_name')).toMatchObject({ value: 'Ann Smith', source: 'derived' });
    foldEvents(state, [identify('6', 6000, { first_name: null })], { rules });
    expect(state.traits.has('full_name')).toBe(false);
  });

  it('folds the same with rules incrementally and from scratch', () => {
    const events = [
      identify('1', 1000, { first_name: 'Ann', country: 'France' }),
      identify('2', 2000, { last_name: 'Lee', country: 'nowhere' }),
      identify('3', 3000, { $set_once: { plan: 'trial' }, country: 'FRA' }),
    ];
    const whole = emptyProfileState();
    foldEvents(whole, events, { rules });
    const steps = emptyProfileState();
    for (const e of events) foldEvents(steps, [e], { rules });
    expect([...steps.traits]).toEqual([...whole.traits]);
    expect(whole.traits.get('plan')).toMatchObject({ value: 'trial', source: 'identify' });
    expect(whole.traits.get('country')?.value).toBe('FR');
  });
});
