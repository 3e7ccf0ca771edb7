import { describe, expect, it } from 'vitest';
import { sealedUseInDefinition, sealedUseInRule } from './rules.ts';

const sensitive = (k: string) => k === 'email' || k === 'address';

describe('rules over encrypted traits', () => {
  it('refuses comparisons ciphertext cannot answer, naming where', () => {
    expect(sealedUseInRule({ op: 'trait', trait: 'email', cmp: '=', value: 'a@b.test' }, sensitive)?.path).toBe('cmp');
    expect(
      sealedUseInRule(
        {
          op: 'or',
          rules: [
            { op: 'has_tag', tag: 'x' },
            { op: 'not', rule: { op: 'account', trait: 'address', cmp: 'contains', value: 'Oslo' } },
          ],
        },
        sensitive,
      )?.path,
    ).toBe('rules[1].rule.cmp');
    expect(
      sealedUseInRule(
        {
          op: 'aggregate',
          fn: 'count',
          event: 'Order',
          where: [{ property: 'address.city', cmp: '=', value: 'Oslo' }],
          cmp: '>',
          value: 1,
        },
        sensitive,
      )?.path,
    ).toBe('where[0].cmp');
    expect(
      sealedUseInRule({ op: 'aggregate', fn: 'max', event: 'Order', property: 'email', cmp: '>', value: 1 }, sensitive)
        ?.message,
    ).toMatch(/event property email is encrypted at rest/);
    expect(
      sealedUseInDefinition({ kind: 'aggregate', fn: 'last', event: 'Signed Up', property: 'email' }, sensitive)?.path,
    ).toBe('property');
  });

  it('lets through what still works: exists, is_empty, traits that are not sensitive', () => {
    expect(sealedUseInRule({ op: 'trait', trait: 'email', cmp: 'exists' }, sensitive)).toBeNull();
    expect(sealedUseInRule({ op: 'trait', trait: 'email', cmp: 'is_empty' }, sensitive)).toBeNull();
    expect(sealedUseInRule({ op: 'trait', trait: 'plan', cmp: '=', value: 'pro' }, sensitive)).toBeNull();
    expect(
      sealedUseInRule({ op: 'performed', event: 'Order', where: [{ property: 'email', cmp: 'exists' }] }, sensitive),
    ).toBeNull();
    expect(sealedUseInRule({ op: 'subscription', channel: 'email', state: 'unsubscribed' }, sensitive)).toBeNull();
    expect(
      sealedUseInDefinition({ kind: 'aggregate', fn: 'sum', event: 'Order', property: 'total' }, sensitive),
    ).toBeNull();
  });
});
