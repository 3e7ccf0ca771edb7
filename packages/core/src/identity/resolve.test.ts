import { describe, expect, it } from 'vitest';
import type { TrackingEvent } from '../event.ts';
import { diffPartitions } from './diff.ts';
import { extractIdentities } from './extract.ts';
import { type IdentityLink, type Partition, resolveIdentities } from './resolve.ts';
import { type IdentityOptions, identityKey } from './types.ts';

/** One link from a (partial) event, as the identify stage would build it. */
function link(eventId: string, ts: number, event: Partial<TrackingEvent>, options: IdentityOptions = {}): IdentityLink {
  const full = { type: 'track', event: 'Viewed', ...event } as TrackingEvent;
  return { eventId, ts, ids: extractIdentities(full, options) };
}

/** The partition as sorted lists of identity keys: easy to read in a failing test. */
function profiles(p: Partition): string[][] {
  return p.groups.map((g) => g.identities.map(identityKey).sort());
}

function together(p: Partition, a: string, b: string): boolean {
  const g = p.groupOf.get(a);
  return g !== undefined && g === p.groupOf.get(b);
}

describe('resolveIdentities: scenarios', () => {
  it('anonymous browsing then sign-up gives one profile, keyed by its first identity', () => {
    const p = resolveIdentities([
      link('e1', 1, { type: 'page', anonymousId: 'a1' }),
      link('e2', 2, { type: 'page', anonymousId: 'a1' }),
      link('e3', 3, { type: 'identify', anonymousId: 'a1', userId: 'u1', traits: { email: 'Ann@Example.com' } }),
      link('e4', 4, { userId: 'u1' }),
    ]);
    expect(profiles(p)).toEqual([['anonymousId:a1', 'email:ann@example.com', 'userId:u1']]);
    expect(p.groups[0]).toMatchObject({ key: 'anonymousId:a1', identifiedAt: { ts: 3, eventId: 'e3' }, merges: [] });
    expect(p.refusals).toEqual([]);
  });

  it('one user on two devices gives one profile with both anonymousIds and a merge step', () => {
    const p = resolveIdentities([
      link('e1', 1, { type: 'identify', anonymousId: 'laptop', userId: 'u1' }),
      link('e2', 2, { type: 'page', anonymousId: 'phone' }),
      link('e3', 3, { type: 'page', anonymousId: 'phone' }),
      link('e4', 4, { type: 'identify', anonymousId: 'phone', userId: 'u1' }),
    ]);
    expect(profiles(p)).toEqual([['anonymousId:laptop', 'anonymousId:phone', 'userId:u1']]);
    expect(p.groups[0]!.merges).toEqual([{ ts: 4, eventId: 'e4', survivor: 'userId:u1', merged: 'anonymousId:phone' }]);
  });

  it('two users on one shared device get two profiles; the device stays with the first user', () => {
    const p = resolveIdentities([
      link('e1', 1, { type: 'page', anonymousId: 'kiosk' }),
      link('e2', 2, { type: 'identify', anonymousId: 'kiosk', userId: 'u1' }),
      link('e3', 3, { type: 'identify', anonymousId: 'kiosk', userId: 'u2', traits: { email: 'bob@example.com' } }),
      link('e4', 4, { type: 'page', anonymousId: 'kiosk' }),
    ]);
    expect(profiles(p)).toEqual([
      ['anonymousId:kiosk', 'userId:u1'],
      ['email:bob@example.com', 'userId:u2'],
    ]);
    expect(p.refusals).toEqual([
      {
        ts: 3,
        eventId: 'e3',
        type: 'userId',
        groups: ['userId:u2', 'anonymousId:kiosk'],
        reason: 'merging anonymousId:kiosk into userId:u2 would put more than 1 userId in one profile',
      },
    ]);
  });

  it('alias links previousId (an anonymousId by default) to the userId', () => {
    const p = resolveIdentities([
      link('e1', 1, { type: 'page', anonymousId: 'a9' }),
      link('e2', 2, { type: 'alias', anonymousId: 'a9', previousId: 'a9', userId: 'u9' }),
    ]);
    expect(profiles(p)).toEqual([['anonymousId:a9', 'userId:u9']]);
  });

  it('alias of an old userId merges only when typed userId and the userId limit allows two', () => {
    const events = (o: IdentityOptions) => [
      link('e1', 1, { userId: 'old' }, o),
      link('e2', 2, { userId: 'new' }, o),
      link('e3', 3, { type: 'alias', previousId: 'old', userId: 'new' }, o),
    ];
    // By default previousId is an anonymousId: the old user's profile is not touched.
    expect(profiles(resolveIdentities(events({})))).toEqual([['anonymousId:old', 'userId:new'], ['userId:old']]);
    const asUser: IdentityOptions = { aliasPreviousIdAs: 'userId' };
    const refused = resolveIdentities(events(asUser), asUser);
    expect(profiles(refused)).toEqual([['userId:new'], ['userId:old']]);
    expect(refused.refusals.map((r) => [r.eventId, r.type])).toEqual([['e3', 'userId']]);
    const allowed: IdentityOptions = { aliasPreviousIdAs: 'userId', limits: { userId: 2 } };
    const merged = resolveIdentities(events(allowed), allowed);
    expect(merged.groups).toMatchObject([{ key: 'userId:old', identifiedAt: { eventId: 'e1' } }]);
  });

  it('blocked values never link two people', () => {
    const junk = { userId: 'null', anonymousId: ' Anonymous ', context: { traits: { email: 'undefined' } } };
    const p = resolveIdentities([
      link('e1', 1, { ...junk, type: 'identify', traits: { phone: '-1' } }),
      link('e2', 2, { type: 'identify', anonymousId: 'anonymous', userId: 'u1' }),
      link('e3', 3, { type: 'identify', anonymousId: 'anonymous', userId: 'u2' }),
      link('e4', 4, { anonymousId: '0', userId: 'u3' }),
    ]);
    expect(profiles(p)).toEqual([['userId:u1'], ['userId:u2'], ['userId:u3']]);
    expect(p.refusals).toEqual([]);
  });

  it('a configured blocked list adds to the defaults', () => {
    const o: IdentityOptions = { blocked: ['guest', 'Test@Example.com'] };
    const p = resolveIdentities([
      link('e1', 1, { type: 'identify', userId: 'u1', anonymousId: 'GUEST', traits: { email: 'test@example.com' } }, o),
      link('e2', 2, { type: 'identify', userId: 'u2', anonymousId: 'guest', traits: { email: 'TEST@example.com' } }, o),
    ]);
    expect(profiles(p)).toEqual([['userId:u1'], ['userId:u2']]);
  });

  it('identify with an email another user holds is refused; the email stays with its holder', () => {
    const p = resolveIdentities([
      link('e1', 1, { type: 'identify', userId: 'u1', traits: { email: 'shared@example.com' } }),
      link('e2', 2, { type: 'identify', userId: 'u2', anonymousId: 'a2', traits: { email: 'Shared@example.com' } }),
    ]);
    expect(profiles(p)).toEqual([
      ['email:shared@example.com', 'userId:u1'],
      ['anonymousId:a2', 'userId:u2'],
    ]);
    expect(p.refusals).toMatchObject([{ eventId: 'e2', type: 'userId', groups: ['userId:u2', 'userId:u1'] }]);
  });

  it('an email held by an anonymous profile merges into the identified one, which survives', () => {
    const p = resolveIdentities([
      link('e1', 1, { type: 'identify', anonymousId: 'news', traits: { email: 'ann@example.com' } }),
      link('e2', 2, { type: 'identify', userId: 'u1', anonymousId: 'app' }),
      link('e3', 3, { type: 'identify', userId: 'u1', traits: { email: 'ann@example.com' } }),
    ]);
    expect(p.groups).toHaveLength(1);
    expect(p.groups[0]).toMatchObject({
      key: 'userId:u1',
      firstSeen: { ts: 1, eventId: 'e1' },
      merges: [{ eventId: 'e3', survivor: 'userId:u1', merged: 'email:ann@example.com' }],
    });
  });

  it('when the anchor group loses the survivor rule, it is not merged a second time', () => {
    const p = resolveIdentities([
      link('e1', 1, { type: 'page', anonymousId: 'old' }),
      link('e2', 2, { anonymousId: 'new', context: { traits: { email: 'ann@example.com' } } }),
      link('e3', 3, { anonymousId: 'old', context: { traits: { email: 'ann@example.com' } } }),
    ]);
    expect(profiles(p)).toEqual([['anonymousId:new', 'anonymousId:old', 'email:ann@example.com']]);
    expect(p.groups[0]!.merges).toEqual([
      { ts: 3, eventId: 'e3', survivor: 'anonymousId:old', merged: 'email:ann@example.com' },
    ]);
  });

  it('a late-arriving older event re-binds the shared device to its first user (an automatic split)', () => {
    const early = link('e1', 1, { type: 'identify', anonymousId: 'kiosk', userId: 'u1' });
    const later = [
      link('e4', 4, { type: 'page', anonymousId: 'kiosk' }),
      link('e5', 5, { type: 'identify', anonymousId: 'kiosk', userId: 'u2' }),
    ];
    const before = resolveIdentities(later);
    expect(profiles(before)).toEqual([['anonymousId:kiosk', 'userId:u2']]);
    const after = resolveIdentities([...later, early]);
    expect(profiles(after)).toEqual([['anonymousId:kiosk', 'userId:u1'], ['userId:u2']]);
    expect(resolveIdentities([early, ...later])).toEqual(after);

    const stored = new Map([...before.groupOf].map(([id]) => [id, 'profile-1']));
    const diff = diffPartitions(stored, after);
    expect(diff.splits).toEqual([{ from: 'profile-1', into: ['userId:u1', 'userId:u2'], keptBy: 'userId:u2' }]);
    expect(diff.groups).toEqual([
      { key: 'userId:u1', continues: null, sources: ['profile-1'] },
      { key: 'userId:u2', continues: 'profile-1', sources: ['profile-1'] },
    ]);
  });
});

describe('resolveIdentities: limits and determinism', () => {
  const emails = (n: number, o: IdentityOptions = {}) =>
    Array.from({ length: n }, (_, i) =>
      link(`e${i}`, i, { type: 'identify', userId: 'u1', traits: { email: `m${i}@example.com` } }, o),
    );

  it('keeps five emails per profile by default; a sixth gets a profile of its own', () => {
    const p = resolveIdentities(emails(6));
    expect(p.groups.map((g) => g.identities.length)).toEqual([1, 6]);
    expect(p.groupOf.get('email:m5@example.com')).toBe('email:m5@example.com');
    expect(p.refusals).toMatchObject([{ eventId: 'e5', type: 'email', groups: ['userId:u1', 'email:m5@example.com'] }]);
  });

  it('honours configured limits per type and a default limit', () => {
    expect(resolveIdentities(emails(6), { limits: { email: 2 } }).refusals).toHaveLength(4);
    expect(resolveIdentities(emails(6), { defaultLimit: 3 }).refusals).toHaveLength(3);
    expect(resolveIdentities(emails(6), { defaultLimit: 3, limits: { email: 6 } }).refusals).toHaveLength(0);
    const shared = [
      link('e1', 1, { userId: 'u1', anonymousId: 'a' }),
      link('e2', 2, { userId: 'u2', anonymousId: 'a' }),
    ];
    expect(resolveIdentities(shared, { limits: { userId: 2 } }).groups).toHaveLength(1);
  });

  it('refuses limits that are not integers >= 1', () => {
    expect(() => resolveIdentities([], { limits: { email: 0 } })).toThrow(RangeError);
    expect(() => resolveIdentities([], { defaultLimit: 1.5 })).toThrow(RangeError);
  });

  it('the oldest identified profile survives a merge of two identified profiles', () => {
    const o: IdentityOptions = { limits: { userId: 2 } };
    const p = resolveIdentities(
      [
        link('e1', 1, { type: 'page', anonymousId: 'old-device' }),
        link('e2', 2, { userId: 'u-b', anonymousId: 'b' }),
        link('e3', 3, { userId: 'u-a', anonymousId: 'old-device' }),
        link('e4', 4, { userId: 'u-a', context: { traits: { email: 'x@example.com' } } }),
        link('e5', 5, { userId: 'u-b', context: { traits: { email: 'x@example.com' } } }),
      ],
      o,
    );
    // u-b was identified first (e2), although the other group is older (e1).
    expect(p.groups).toMatchObject([
      { key: 'userId:u-b', firstSeen: { eventId: 'e1' }, identifiedAt: { eventId: 'e2' } },
    ]);
    expect(p.groups[0]!.merges).toEqual([
      { ts: 5, eventId: 'e5', survivor: 'userId:u-b', merged: 'anonymousId:old-device' },
    ]);
  });

  it('orders equal timestamps by eventId and unites links that share an eventId', () => {
    const a = link('b', 7, { userId: 'u2', anonymousId: 'a' });
    const b = link('a', 7, { userId: 'u1', anonymousId: 'a' });
    expect(resolveIdentities([a, b]).groupOf.get('anonymousId:a')).toBe('userId:u1');
    const split = [
      { eventId: 'x', ts: 3, ids: [{ type: 'userId', value: 'u' }] },
      { eventId: 'x', ts: 2, ids: [{ type: 'anonymousId', value: 'd' }] },
    ] as const;
    const p = resolveIdentities(split);
    expect(together(p, 'userId:u', 'anonymousId:d')).toBe(true);
    expect(p.groups[0]!.firstSeen).toEqual({ ts: 2, eventId: 'x' });
  });

  it('refuses a non-finite timestamp instead of guessing an order', () => {
    expect(() => resolveIdentities([{ eventId: 'e', ts: Number.NaN, ids: [] }])).toThrow(/ts must be a finite/);
  });
});

describe('diffPartitions', () => {
  it('reports a merge with the survivor the replay chose, and new groups as continuing nothing', () => {
    const before = new Map([
      ['anonymousId:phone', 'p1'],
      ['userId:u1', 'p2'],
      ['anonymousId:laptop', 'p2'],
    ]);
    const after = resolveIdentities([
      link('e1', 1, { type: 'identify', anonymousId: 'laptop', userId: 'u1' }),
      link('e2', 2, { anonymousId: 'phone' }),
      link('e3', 3, { userId: 'u1', anonymousId: 'phone' }),
      link('e4', 4, { userId: 'u7' }),
    ]);
    const diff = diffPartitions(before, after);
    expect(diff.merges).toEqual([{ key: 'userId:u1', survivor: 'p2', merged: ['p1'] }]);
    expect(diff.groups).toContainEqual({ key: 'userId:u7', continues: null, sources: [] });
    expect(diff.splits).toEqual([]);
  });
});
