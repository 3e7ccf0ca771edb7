import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { consentFromEvent } from './consent.ts';
import {
  compareTraitEvents,
  DIRECT_REFERRER,
  emptyProfileState,
  foldEvents,
  normalizeTrait,
  type ProfileState,
  type TraitEvent,
  traitOps,
} from './traits.ts';

const identify = (id: number, ts: number, traits: Record<string, unknown>): TraitEvent => ({
  id: String(id),
  ts,
  type: 'identify',
  payload: { traits },
});
const values = (s: ProfileState) => Object.fromEntries([...s.traits].map(([k, v]) => [k, v.value]));
const fold = (events: TraitEvent[]) => {
  const s = emptyProfileState();
  foldEvents(s, events);
  return s;
};

describe('traitOps', () => {
  it('reads plain keys as $set and the four operators in a fixed order', () => {
    expect(
      traitOps({ plan: 'pro', $add: { logins: 1, bad: '2' }, $unset: ['trial'], $set_once: { src: 'ad' } }),
    ).toEqual([
      { op: 'set', key: 'plan', value: 'pro' },
      { op: 'set_once', key: 'src', value: 'ad' },
      { op: 'unset', key: 'trial' },
      { op: 'add', key: 'logins', by: 1 },
    ]);
  });
  it('ignores unknown operators, empty and $-prefixed keys', () => {
    expect(traitOps({ $inc: { a: 1 }, '': 1, $set: { $x: 1, ok: 2 } })).toEqual([{ op: 'set', key: 'ok', value: 2 }]);
  });
});

describe('foldEvents', () => {
  it('applies $set, $set_once, $unset and $add in event-time order', () => {
    const s = fold([
      identify(3, 300, { $unset: ['trial'], $add: { logins: 2 } }),
      identify(1, 100, { plan: 'free', trial: true, $set_once: { first: 'a' }, $add: { logins: 1 } }),
      identify(2, 200, { plan: 'pro', $set_once: { first: 'b' } }),
    ]);
    expect(values(s)).toMatchObject({ plan: 'pro', first: 'a', logins: 3 });
    expect(s.traits.has('trial')).toBe(false);
    expect(s.traits.get('plan')).toMatchObject({ ts: 200, eventId: '2', source: 'identify' });
  });

  it('refuses to fold an event older than what it already folded (the caller refolds)', () => {
    const s = fold([identify(5, 500, { a: 1 })]);
    expect(foldEvents(s, [identify(4, 400, { a: 2 })])).toBe(false);
    expect(values(s).a).toBe(1);
    expect(foldEvents(s, [identify(6, 600, { a: 3 })])).toBe(true);
    expect(values(s).a).toBe(3);
  });

  it('orders ids numerically at equal timestamps', () => {
    expect(compareTraitEvents({ ts: 1, id: '9' }, { ts: 1, id: '10' })).toBeLessThan(0);
  });

  it('derives first and last touch', () => {
    const page = (id: number, ts: number, source: string, referrer: string): TraitEvent => ({
      id: String(id),
      ts,
      type: 'page',
      payload: { context: { campaign: { source, name: `c${id}` }, page: { referrer } } },
    });
    const s = fold([page(2, 200, 'mail', 'https://b.test/x'), page(1, 100, 'ads', 'https://a.test/y')]);
    expect(values(s)).toMatchObject({
      initial_utm_source: 'ads',
      initial_utm_campaign: 'c1',
      last_utm_source: 'mail',
      initial_referrer: 'https://a.test/y',
      initial_referring_domain: 'a.test',
      last_referrer: 'https://b.test/x',
      first_seen_at: new Date(100).toISOString(),
      last_seen_at: new Date(200).toISOString(),
    });
  });

  describe('referrer touches', () => {
    // What the snippet (and analytics.js) sends: document.referrer, '' on a direct visit; after a
    // link inside the site, the site's own previous page.
    const visit = (id: number, ts: number, url: string, referrer: string): TraitEvent => ({
      id: String(id),
      ts,
      type: 'page',
      payload: { context: { page: { url, referrer } } },
    });

    it('a direct first visit is the first touch; the internal pages after it are not touches', () => {
      const s = fold([
        visit(1, 100, 'https://shop.test/', ''),
        visit(2, 200, 'https://shop.test/product/1', 'https://shop.test/'),
        visit(3, 300, 'https://shop.test/cart', 'https://shop.test/product/1'),
      ]);
      expect(values(s)).toMatchObject({
        initial_referrer: DIRECT_REFERRER,
        initial_referring_domain: DIRECT_REFERRER,
      });
      expect(values(s).last_referrer).toBeUndefined();
    });

    it('is decided by event time, not arrival: a late direct landing still wins', () => {
      const s = emptyProfileState();
      foldEvents(s, [visit(5, 200, 'https://shop.test/cart', 'https://shop.test/')]);
      expect(values(s).initial_referrer).toBeUndefined();
      // The earlier event arrives later: the caller refolds everything in event order.
      const again = fold([
        visit(5, 200, 'https://shop.test/cart', 'https://shop.test/'),
        visit(4, 100, 'https://shop.test/', ''),
      ]);
      expect(values(again).initial_referrer).toBe(DIRECT_REFERRER);
    });

    it('an external referrer after a direct first visit is the last touch, not the first', () => {
      const s = fold([
        visit(1, 100, 'https://shop.test/', ''),
        visit(2, 200, 'https://shop.test/sale', 'https://news.test/article'),
      ]);
      expect(values(s)).toMatchObject({
        initial_referrer: DIRECT_REFERRER,
        initial_referring_domain: DIRECT_REFERRER,
        last_referrer: 'https://news.test/article',
      });
    });

    it('events without a browser page (server-side) are no touch at all', () => {
      const s = fold([
        { id: '1', ts: 100, type: 'track', payload: { event: 'Order Completed' } },
        { id: '2', ts: 150, type: 'track', payload: { context: { page: { path: '/x' } } } },
        visit(3, 200, 'https://shop.test/', 'https://search.test/q'),
      ]);
      expect(values(s)).toMatchObject({
        initial_referrer: 'https://search.test/q',
        initial_referring_domain: 'search.test',
      });
    });
  });

  it('lets identify traits win over context.traits within one event, and records the source', () => {
    const s = fold([
      { id: '1', ts: 1, type: 'identify', payload: { traits: { a: 'own' }, context: { traits: { a: 'ctx', b: 2 } } } },
    ]);
    expect(s.traits.get('a')).toMatchObject({ value: 'own', source: 'identify' });
    expect(s.traits.get('b')).toMatchObject({ value: 2, source: 'context.traits' });
  });

  it('records group memberships', () => {
    const group = (id: number, ts: number): TraitEvent => ({
      id: String(id),
      ts,
      type: 'group',
      payload: { groupId: 'acme' },
    });
    const s = fold([group(2, 200), group(1, 100)]);
    expect(s.groups.get('acme')).toMatchObject({ firstTs: 100, lastTs: 200 });
  });

  it('is a function of the set of events: any order, any split into in-order increments', () => {
    const op = fc.oneof(
      fc.record({ plan: fc.constantFrom('a', 'b', 'c') }),
      fc.record({ $set_once: fc.record({ src: fc.constantFrom('x', 'y') }) }),
      fc.record({ $add: fc.record({ n: fc.integer({ min: -3, max: 3 }) }) }),
      fc.record({ $unset: fc.constant(['plan', 'n']) }),
    );
    const events = fc
      .array(fc.tuple(fc.integer({ min: 0, max: 20 }), op), { minLength: 1, maxLength: 30 })
      .map((list) => list.map(([ts, traits], i) => identify(i + 1, ts, traits)));
    fc.assert(
      fc.property(events, fc.integer({ min: 0, max: 30 }), (list, cut) => {
        const reference = values(fold(list));
        const shuffled = [...list].reverse();
        expect(values(fold(shuffled))).toEqual(reference);
        const sorted = [...list].sort(compareTraitEvents);
        const s = emptyProfileState();
        foldEvents(s, sorted.slice(0, cut));
        expect(foldEvents(s, sorted.slice(cut))).toBe(true);
        expect(values(s)).toEqual(reference);
      }),
      { seed: 20261122, numRuns: 300 },
    );
  });
});

describe('normalizeTrait', () => {
  it('normalises well-known traits and leaves others alone', () => {
    expect(normalizeTrait('email', ' A@B.Test ')).toBe('a@b.test');
    expect(normalizeTrait('phone', '(020) 7946 0018', { defaultCallingCode: '44' })).toBe('+442079460018');
    expect(normalizeTrait('phone', '020 7946')).toBe('0207946');
    expect(normalizeTrait('firstName', '  Ann ')).toBe('Ann');
    expect(normalizeTrait('birthday', '1990-04-01')).toBe('1990-04-01');
    expect(normalizeTrait('createdAt', 'March 7, 2024 10:00 UTC')).toBe('2024-03-07T10:00:00.000Z');
    expect(normalizeTrait('createdAt', 'not a date')).toBe('not a date');
    expect(normalizeTrait('note', '  kept  ')).toBe('  kept  ');
  });
});

describe('consentFromEvent', () => {
  it('reads Segment categoryPreferences, lower-cased, booleans only', () => {
    const payload = {
      context: { consent: { categoryPreferences: { Marketing: false, Analytics: true, Ads: 'yes' } } },
    };
    expect(consentFromEvent(payload)).toEqual([
      ['marketing', false],
      ['analytics', true],
    ]);
    expect(consentFromEvent(payload, ['analytics'])).toEqual([['analytics', true]]);
    expect(consentFromEvent({ context: { consent: 'all' } })).toEqual([]);
  });
});
