import type { ComputedTraitDefinition, PropertyFilter, Rule } from '@cairn/core';
import type { Pii } from './index.ts';

/** Comparisons that still work on a sealed value: whether it is there. */
const ON_SEALED = new Set(['exists', 'is_empty']);

/** Why a rule or definition cannot work on encrypted values, and where. */
export interface SealedUse {
  path: string;
  message: string;
}

const refusal = (path: string, what: string, cmp: string, profileTrait = false): SealedUse => ({
  path,
  message:
    `${what} is encrypted at rest (CAIRN_PII_TRAITS), so "${cmp}" cannot compare it; ` +
    (profileTrait
      ? 'only exists, is_empty and equality (=, !=, in: compared by blind index) can test it'
      : 'only exists and is_empty can test it'),
});

const rootOf = (path: string) => path.split('.')[0]!;

function filters(where: readonly PropertyFilter[] | undefined, at: string, sensitive: (k: string) => boolean) {
  for (const [i, f] of (where ?? []).entries()) {
    if (sensitive(rootOf(f.property)) && !ON_SEALED.has(f.cmp)) {
      return refusal(`${at}where[${i}].cmp`, `event property ${f.property}`, f.cmp);
    }
  }
  return null;
}

/**
 * The first place a rule compares a sensitive trait, account trait or event property in a way that
 * cannot work on ciphertext (anything but exists / is_empty), or null. A rule like that would be
 * silently wrong (never true), so it is refused when saved.
 *
 * @example
 * sealedUseInRule({ op: 'trait', trait: 'email', cmp: 'contains', value: '@acme.com' }, (k) => k === 'email');
 * // { path: 'cmp', message: 'trait email is encrypted at rest ...' }
 */
export function sealedUseInRule(rule: Rule, sensitive: (key: string) => boolean, at = ''): SealedUse | null {
  switch (rule.op) {
    case 'and':
    case 'or':
      for (const [i, r] of rule.rules.entries()) {
        const found = sealedUseInRule(r, sensitive, `${at}rules[${i}].`);
        if (found) return found;
      }
      return null;
    case 'not':
      return sealedUseInRule(rule.rule, sensitive, `${at}rule.`);
    case 'trait':
    case 'account':
      return sensitive(rule.trait) && !ON_SEALED.has(rule.cmp)
        ? refusal(
            `${at}cmp`,
            `${rule.op === 'trait' ? 'trait' : 'account trait'} ${rule.trait}`,
            rule.cmp,
            rule.op === 'trait',
          )
        : null;
    case 'aggregate':
      if (rule.property && sensitive(rootOf(rule.property))) {
        return refusal(`${at}property`, `event property ${rule.property}`, rule.fn);
      }
      return filters(rule.where, at, sensitive);
    case 'performed':
    case 'occurrence':
      return filters(rule.where, at, sensitive);
    default:
      return null;
  }
}

/**
 * The same for a computed trait's definition: an aggregate over a sensitive property would count,
 * compare or copy ciphertexts.
 *
 * @example
 * sealedUseInDefinition({ kind: 'aggregate', fn: 'last', event: 'Signed Up', property: 'email' }, (k) => k === 'email');
 */
export function sealedUseInDefinition(
  def: ComputedTraitDefinition,
  sensitive: (key: string) => boolean,
): SealedUse | null {
  if (
    (def.kind === 'aggregate' || def.kind === 'rfm' || def.kind === 'preferred') &&
    def.property &&
    sensitive(rootOf(def.property))
  ) {
    return refusal('property', `event property ${def.property}`, def.kind === 'aggregate' ? def.fn : def.kind);
  }
  return def.kind === 'aggregate' ? filters(def.where, '', sensitive) : null;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Rewrites equality on encrypted profile traits into blind-index leaves before a rule is validated
 * and stored: `=` and `in` become `trait_index` (the blind indexes of the normalised operands), `!=`
 * becomes "exists and not trait_index". The stored rule then holds keyed hashes, never the clear
 * operands. Anything else is returned unchanged (validation reports what is wrong with it).
 *
 * @example
 * blindEqualities({ op: 'trait', trait: 'email', cmp: '=', value: 'ann@example.com' }, pii);
 * // { op: 'trait_index', trait: 'email', in: ['<43 characters>'] }
 */
export function blindEqualities(input: unknown, pii: Pick<Pii, 'isSensitive' | 'traitIndex'>): unknown {
  if (!isObj(input)) return input;
  if ((input.op === 'and' || input.op === 'or') && Array.isArray(input.rules)) {
    return { ...input, rules: input.rules.map((r) => blindEqualities(r, pii)) };
  }
  if (input.op === 'not') return { ...input, rule: blindEqualities(input.rule, pii) };
  if (input.op !== 'trait' || typeof input.trait !== 'string' || !pii.isSensitive(input.trait)) return input;
  const trait = input.trait;
  const operands = input.cmp === 'in' && Array.isArray(input.value) ? input.value : [input.value];
  const indexes = operands.map((v) => pii.traitIndex(trait, v));
  if (!indexes.length || indexes.some((i) => i === null)) return input;
  const leaf = { op: 'trait_index', trait, in: [...new Set(indexes as string[])] };
  if (input.cmp === '=' || input.cmp === 'in') return leaf;
  if (input.cmp === '!=') {
    return {
      op: 'and',
      rules: [
        { op: 'trait', trait, cmp: 'exists' },
        { op: 'not', rule: leaf },
      ],
    };
  }
  return input;
}
