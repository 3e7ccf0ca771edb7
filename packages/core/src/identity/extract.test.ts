import { describe, expect, it } from 'vitest';
import type { TrackingEvent } from '../event.ts';
import { extractIdentities, normalizeIdentity, normalizePhone } from './extract.ts';
import { identityKey, limitOf, parseIdentityOptions } from './types.ts';

function keys(event: Partial<TrackingEvent>, options = {}): string[] {
  return extractIdentities({ type: 'track', event: 'x', ...event } as TrackingEvent, options).map(identityKey);
}

describe('extractIdentities', () => {
  it('takes userId, anonymousId, email and phone from an identify, in canonical order', () => {
    const event = {
      type: 'identify' as const,
      anonymousId: ' a1 ',
      userId: 'U1',
      traits: { email: ' Ann@Example.COM ', phone: '+44 20 7946 0018' },
    };
    expect(keys(event)).toEqual(['userId:U1', 'email:ann@example.com', 'phone:+442079460018', 'anonymousId:a1']);
  });

  it('reads context.traits on any event; an identify prefers its own traits', () => {
    const context = { traits: { email: 'cached@example.com', phone: '5550100' } };
    expect(keys({ anonymousId: 'a', context })).toEqual(['email:cached@example.com', 'phone:5550100', 'anonymousId:a']);
    expect(keys({ type: 'identify', userId: 'u', traits: { email: 'new@example.com' }, context })).toEqual([
      'userId:u',
      'email:new@example.com',
      'phone:5550100',
    ]);
    // A blocked or malformed own trait falls back to context.traits.
    expect(keys({ type: 'identify', userId: 'u', traits: { email: 'null' }, context })).toContain(
      'email:cached@example.com',
    );
  });

  it("ignores traits.email on track and group events (a group's traits describe the company)", () => {
    expect(keys({ type: 'group', groupId: 'g', userId: 'u', traits: { email: 'billing@acme.com' } })).toEqual([
      'userId:u',
    ]);
    expect(keys({ userId: 'u', traits: { email: 'x@example.com' } })).toEqual(['userId:u']);
  });

  it('types an alias previousId as an anonymousId unless configured', () => {
    const alias = { type: 'alias' as const, previousId: 'p', userId: 'u' };
    expect(keys(alias)).toEqual(['userId:u', 'anonymousId:p']);
    expect(keys(alias, { aliasPreviousIdAs: 'userId' })).toEqual(['userId:p', 'userId:u']);
    expect(keys({ previousId: 'p', userId: 'u' })).toEqual(['userId:u']);
  });

  it('reads context.externalIds of the users collection; hashed values get a type of their own', () => {
    const externalIds = [
      { id: 'C-9', type: 'CRM_ID', collection: 'users', encoding: 'none' },
      { id: 'ann@example.com', type: 'email', collection: 'users', encoding: 'none' },
      { id: 'ab12', type: 'email', encoding: 'sha256' },
      { id: 42, type: 'braze_id' },
      { id: 'acme', type: 'domain', collection: 'accounts' },
      { id: 'x', type: 'has:colon' },
      { id: 'null', type: 'crm_id' },
      'not an object',
    ];
    expect(keys({ userId: 'u', context: { externalIds } })).toEqual([
      'userId:u',
      'email:ann@example.com',
      'x:braze_id:42',
      'x:crm_id:C-9',
      'x:email.sha256:ab12',
    ]);
  });

  it('drops every default blocked value, whatever its case or padding, and configured ones', () => {
    for (const junk of ['', ' ', 'null', 'NULL', 'undefined', 'Anonymous', '0', '-1', ' -1 ']) {
      expect(keys({ userId: junk, anonymousId: junk, context: { traits: { email: junk, phone: junk } } })).toEqual([]);
    }
    expect(keys({ userId: 'guest', anonymousId: 'a' }, { blocked: ['Guest'] })).toEqual(['anonymousId:a']);
  });

  it('deduplicates identities that arrive twice', () => {
    const context = { externalIds: [{ id: 'u', type: 'user_id' }] };
    expect(keys({ userId: 'u', context })).toEqual(['userId:u']);
  });
});

describe('normalizeIdentity and normalizePhone', () => {
  it('requires an email to look like local@domain', () => {
    expect(normalizeIdentity('email', 'n/a', {})).toBeNull();
    expect(normalizeIdentity('email', 'a b@example.com', {})).toBeNull();
    expect(normalizeIdentity('email', 12, {})).toBeNull();
  });

  it('keeps ids case-sensitive and accepts numeric ids', () => {
    expect(normalizeIdentity('userId', 'AbC', {})).toEqual({ type: 'userId', value: 'AbC' });
    expect(normalizeIdentity('x:crm_id', 42, {})).toEqual({ type: 'x:crm_id', value: '42' });
    expect(normalizeIdentity('userId', { id: 1 }, {})).toBeNull();
  });

  it.each([
    ['+1 (415) 555-0100', undefined, '+14155550100'],
    ['(415) 555-0100', undefined, '4155550100'],
    ['(415) 555-0100', '1', '+14155550100'],
    ['020 7946 0018', '+44', '+442079460018'],
    ['0044 20 7946 0018', '44', '+442079460018'],
    ['n/a', '44', null],
    ['123', undefined, null],
    ['+1234567890123456', undefined, null],
  ])('normalizes phone %j (calling code %j) to %j', (raw, code, expected) => {
    expect(normalizePhone(raw, code)).toBe(expected);
  });

  it('accepts a numeric phone trait', () => {
    expect(normalizeIdentity('phone', 4155550100, {})).toEqual({ type: 'phone', value: '4155550100' });
  });
});

describe('identity options', () => {
  it('defaults to one userId and five of any other type per profile', () => {
    expect([limitOf('userId'), limitOf('email'), limitOf('x:crm_id')]).toEqual([1, 5, 5]);
    expect(limitOf('x:crm_id', { defaultLimit: 2, limits: { 'x:crm_id': 1 } })).toBe(1);
  });

  it('validates options once, up front', () => {
    expect(parseIdentityOptions({ limits: { email: 3 }, defaultCallingCode: '+44' })).toEqual({
      limits: { email: 3 },
      defaultCallingCode: '+44',
    });
    expect(() => parseIdentityOptions({ limits: { email: 0 } })).toThrow();
    expect(() => parseIdentityOptions({ defaultCallingCode: 'UK' })).toThrow();
    expect(() => parseIdentityOptions({ limit: 3 })).toThrow();
  });
});
