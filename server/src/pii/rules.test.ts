import { describe, expect, it } from 'vitest';
import { createPii } from './index.ts';
import { blindEqualities, sealedUseInDefinition, sealedUseInRule } from './rules.ts';

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

  it('rewrites equality on encrypted traits into blind-index leaves, keeping the operands out of the rule', () => {
    const pii = createPii({ secret: 'rules-test-secret-0123456789' });
    const idx = pii.traitIndex('email', 'ann@example.com')!;
    expect(blindEqualities({ op: 'trait', trait: 'email', cmp: '=', value: ' Ann@Example.com ' }, pii)).toEqual({
      op: 'trait_index',
      trait: 'email',
      in: [idx],
    });
    const rewritten = blindEqualities(
      {
        op: 'not',
        rule: {
          op: 'and',
          rules: [
            { op: 'trait', trait: 'email', cmp: '!=', value: 'ann@example.com' },
            { op: 'trait', trait: 'phone', cmp: 'in', value: ['+49 151 1234 4567', '+4915112344567'] },
            { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' },
          ],
        },
      },
      pii,
    );
    expect(rewritten).toEqual({
      op: 'not',
      rule: {
        op: 'and',
        rules: [
          {
            op: 'and',
            rules: [
              { op: 'trait', trait: 'email', cmp: 'exists' },
              { op: 'not', rule: { op: 'trait_index', trait: 'email', in: [idx] } },
            ],
          },
          { op: 'trait_index', trait: 'phone', in: [pii.traitIndex('phone', '+4915112344567')] },
          { op: 'trait', trait: 'plan', cmp: '=', value: 'pro' },
        ],
      },
    });
    expect(JSON.stringify(rewritten)).not.toContain('ann@');
    // Not equality, or not a value an index can stand for: left for validation to refuse.
    const contains = { op: 'trait', trait: 'email', cmp: 'contains', value: '@acme.com' };
    expect(blindEqualities(contains, pii)).toBe(contains);
    const flag = { op: 'trait', trait: 'email', cmp: '=', value: true };
    expect(blindEqualities(flag, pii)).toBe(flag);
  });
});
