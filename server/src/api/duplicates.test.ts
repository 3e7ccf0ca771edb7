import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import { createTestDatabase, type TestDatabase } from '../testing/db.ts';
import { settle } from '../testing/events.ts';
import { describeOnDatabases } from '../testing/flows.ts';
import { sendEvents } from '../testing/index.ts';
import { startTestCairn, TEST_ADMIN_KEY } from '../testing/server.ts';

// Likely duplicates on Postgres and on embedded PGlite, through the real server: people sent as identify events whose
// emails or phones differ as typed (so identity resolution kept them apart), a scan by API, review
// with PII masked per role, a merge through identity resolution (logged, audited, undone by the
// existing unmerge route), a dismissal that sticks across scans, and the permission checks.

interface Candidate {
  id: string;
  score: number;
  status: string;
  reasons: { kind: string }[];
  profiles: { id: string; name: string | null; emails: string[]; phones: string[] }[];
  mergeId: string | null;
}
interface Page {
  data: Candidate[];
  next: string | null;
  scan: { id: string } | null;
}

const PEOPLE: Record<string, Record<string, string>> = {
  // The same Gmail mailbox, typed two ways: an email variant.
  a1: { email: 'John.Smith@gmail.com', name: 'John Smith' },
  a2: { email: ' johnsmith+shop@googlemail.com ' },
  // One name and one number, written differently (no default calling code: two phone identities).
  a3: { name: 'María García', phone: '+44 20 7946 0018' },
  a4: { name: 'garcia, maria', phone: '020 7946 0018' },
  // Distinct people: the same phone with another name; same name without a shared key; dots on a
  // domain that is not Gmail are different mailboxes.
  a5: { name: 'Jane García', phone: '0044 20 7946 0018' },
  a6: { email: 'john.smith@example.com', name: 'John Smith' },
  a7: { email: 'johnsmith@example.com', name: 'John Smith' },
};

describeOnDatabases('likely duplicate profiles on %s', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  let analystKey: string;
  const profileOf = new Map<string, string>();
  const call = async (path: string, init: RequestInit & { key?: string } = {}) => {
    const res = await fetch(`${cairn.url}/api${path}`, {
      redirect: 'manual',
      ...init,
      headers: {
        authorization: `Bearer ${init.key ?? TEST_ADMIN_KEY}`,
        'content-type': 'application/json',
        ...(init.headers ?? {}),
      },
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, location: res.headers.get('location') };
  };
  const scan = () => call('/duplicates/scan', { method: 'POST' });
  const open = async (query = '') => (await call(`/duplicates${query}`)).body as Page;
  const pairOf = (c: Candidate) => c.profiles.map((p) => p.id).sort();
  const pair = (x: string, y: string) => [profileOf.get(x)!, profileOf.get(y)!].sort();

  beforeAll(async () => {
    db = await createTestDatabase('api/duplicates.test.ts', mode);
    cairn = await startTestCairn(db.env);
    await sendEvents(cairn, cairn.demoSource!.writeKey, [
      ...Object.entries(PEOPLE).map(([anonymousId, traits]) => ({ type: 'identify', anonymousId, traits })),
      // Two signed-up users with one Gmail mailbox: a guard (one userId per profile) keeps them apart.
      { type: 'identify', userId: 'u8', traits: { email: 'ann.lee@gmail.com', name: 'Ann Lee' } },
      { type: 'identify', userId: 'u9', traits: { email: 'annlee+news@gmail.com', name: 'Ann Lee' } },
    ]);
    await settle(cairn.sql);
    const rows = await cairn.sql<{ value: string; profile_id: string }[]>`
      SELECT value, profile_id FROM identities WHERE type IN ('anonymousId', 'userId')`;
    for (const r of rows) profileOf.set(r.value, r.profile_id);
    expect(new Set(profileOf.values()).size).toBe(9);
    const key = await call('/keys', { method: 'POST', body: JSON.stringify({ name: 'reviewer', role: 'analyst' }) });
    expect(key.status).toBe(201);
    analystKey = key.body.key;
  }, 120_000);

  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('finds email variants and the same name and phone, and proposes no distinct people', async () => {
    const done = await scan();
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body).toMatchObject({ profiles: 9, changed: 9, candidates: 3, oversizedKeys: 0 });
    const page = await open();
    expect(page.scan?.id).toBe(done.body.id);
    const found = page.data.map((c) => ({ pair: pairOf(c), reasons: c.reasons.map((r) => r.kind), score: c.score }));
    // Best score first.
    expect(found.map((f) => f.score)).toEqual([90, 90, 85]);
    const byPair = (x: { pair: string[] }, y: { pair: string[] }) => x.pair.join().localeCompare(y.pair.join());
    expect([...found].sort(byPair)).toEqual(
      [
        { pair: pair('a1', 'a2'), reasons: ['email'], score: 90 },
        { pair: pair('u8', 'u9'), reasons: ['email'], score: 90 },
        { pair: pair('a3', 'a4'), reasons: ['name_phone'], score: 85 },
      ].sort(byPair),
    );
    // Only keyed hashes are stored: no address, number or name in clear.
    const keys = await cairn.sql<{ key: string }[]>`SELECT key FROM duplicate_keys`;
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.filter((k) => !/^[A-Za-z0-9_-]{43}$/.test(k.key))).toEqual([]);
  });

  it('pages by score with a minimum score, and refuses bad parameters with 400', async () => {
    const first = await open('?limit=1');
    expect(first.data).toHaveLength(1);
    expect(first.next).toMatch(/^\d+\.\d+$/);
    const rest = await open(`?limit=5&cursor=${first.next}`);
    expect(rest.data).toHaveLength(2);
    expect(rest.data.map((c) => c.id)).not.toContain(first.data[0]!.id);
    expect((await open('?minScore=86')).data.map((c) => c.score)).toEqual([90, 90]);
    expect((await call('/duplicates?minScore=101')).status).toBe(400);
    const bad = await call('/duplicates?cursor=abc');
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('cursor');
  });

  it('masks emails and phones for a role without pii:read, and refuses it merges and scans (403)', async () => {
    const admin = (await open()).data.find((c) => c.reasons[0]!.kind === 'name_phone')!;
    expect(admin.profiles.flatMap((p) => p.phones).sort()).toEqual(['+442079460018', '02079460018']);
    const analyst = (await call('/duplicates', { key: analystKey })).body as Page;
    expect(analyst.data).toHaveLength(3);
    const masked = analyst.data.flatMap((c) => c.profiles.flatMap((p) => [...p.emails, ...p.phones]));
    expect(masked.length).toBeGreaterThan(0);
    expect(masked.filter((v) => /john|smith|ann\.?lee|7946/i.test(v))).toEqual([]);
    const id = analyst.data[0]!.id;
    expect((await call(`/duplicates/${id}/merge`, { method: 'POST', key: analystKey })).status).toBe(403);
    expect((await call(`/duplicates/${id}/dismiss`, { method: 'POST', key: analystKey })).status).toBe(403);
    expect((await call('/duplicates/scan', { method: 'POST', key: analystKey })).status).toBe(403);
    expect((await call(`/duplicates/${id}`)).body.status).toBe('open');
  });

  it('merges a pair into one profile through identity resolution, logged and audited; unmerge restores both', async () => {
    const candidate = (await open()).data.find((c) => pairOf(c).join() === pair('a1', 'a2').join())!;
    const merged = await call(`/duplicates/${candidate.id}/merge`, { method: 'POST' });
    expect(merged.status, JSON.stringify(merged.body)).toBe(200);
    const { survivor, merged: gone, mergeId } = merged.body as { survivor: string; merged: string; mergeId: string };
    expect([survivor, gone].sort()).toEqual(pair('a1', 'a2'));
    // One profile: the merged-away id redirects, the survivor holds both mailboxes and both devices.
    expect((await call(`/profiles/${gone}`)).location).toBe(`/api/profiles/${survivor}`);
    const one = (await call(`/profiles/${survivor}`)).body as { identities: { type: string; value: string }[] };
    expect(one.identities.filter((i) => i.type === 'email').map((i) => i.value.trim().toLowerCase())).toHaveLength(2);
    expect(
      one.identities
        .filter((i) => i.type === 'anonymousId')
        .map((i) => i.value)
        .sort(),
    ).toEqual(['a1', 'a2']);
    const log = (await call(`/profiles/${survivor}/merges`)).body.data as {
      id: string;
      kind: string;
      actor: string;
      reason: string;
    }[];
    expect(log.find((m) => m.id === mergeId)).toMatchObject({
      kind: 'merge',
      reason: expect.stringContaining(`duplicate candidate ${candidate.id}`),
    });
    expect(log.find((m) => m.id === mergeId)!.actor).toBeTruthy();
    // The audit log holds the merge (ids only), and the analyst's refused attempt (403) before it.
    const audit = (await call('/audit?action=duplicate.merge')).body.data as { status: number; resourceId: string }[];
    expect(audit.filter((a) => a.status === 200)).toMatchObject([
      { resourceId: candidate.id, after: { survivor, merged: gone, mergeId } },
    ]);
    expect(audit.filter((a) => a.status === 403)).toHaveLength(1);
    expect((await call(`/duplicates/${candidate.id}`)).body).toMatchObject({ status: 'merged', mergeId });
    // Decided: a second merge is refused, and a new scan proposes the pair no more.
    expect((await call(`/duplicates/${candidate.id}/merge`, { method: 'POST' })).status).toBe(409);
    await scan();
    expect((await open()).data.map(pairOf)).not.toContainEqual(pair('a1', 'a2'));

    const undone = await call(`/profiles/${survivor}/unmerge`, { method: 'POST', body: JSON.stringify({ mergeId }) });
    expect(undone.status, JSON.stringify(undone.body)).toBe(200);
    expect(undone.body).toMatchObject({ survivor, restored: gone });
    const back = await call(`/profiles/${gone}`);
    expect(back.status).toBe(200);
    expect(back.body.identities.map((i: { value: string }) => i.value)).toContain(
      gone === profileOf.get('a1') ? 'a1' : 'a2',
    );
    const rows = await cairn.sql<{ profile_id: string }[]>`
      SELECT DISTINCT profile_id FROM identities WHERE type = 'anonymousId' AND value IN ('a1', 'a2')`;
    expect(rows.map((r) => r.profile_id).sort()).toEqual(pair('a1', 'a2'));
  });

  it('refuses a merge an identity guard forbids (two userIds) with 409, leaving the pair open', async () => {
    const candidate = (await open()).data.find((c) => pairOf(c).join() === pair('u8', 'u9').join())!;
    const refused = await call(`/duplicates/${candidate.id}/merge`, { method: 'POST' });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('merge_refused');
    expect((await call(`/duplicates/${candidate.id}`)).body.status).toBe('open');
    const [n] = await cairn.sql<
      { n: number }[]
    >`SELECT count(DISTINCT profile_id)::int AS n FROM identities WHERE type = 'userId'`;
    expect(n!.n).toBe(2);
  });

  it('dismisses a pair: no later scan proposes it again', async () => {
    const candidate = (await open()).data.find((c) => c.reasons[0]!.kind === 'name_phone')!;
    const dismissed = await call(`/duplicates/${candidate.id}/dismiss`, { method: 'POST' });
    expect(dismissed.status).toBe(200);
    expect(dismissed.body.status).toBe('dismissed');
    expect((await scan()).status).toBe(200);
    expect((await open()).data.map(pairOf)).not.toContainEqual(pair('a3', 'a4'));
    // The pair merged and unmerged before is decided too: not proposed again.
    expect((await open()).data.map(pairOf)).toEqual([pair('u8', 'u9')]);
    // Nothing changed since: no profile is opened again, the same pairs stand; a full scan re-keys all.
    expect((await scan()).body).toMatchObject({ profiles: 9, changed: 0, candidates: 1 });
    const full = await call('/duplicates/scan?full=true', { method: 'POST' });
    expect(full.body).toMatchObject({ profiles: 9, changed: 9, candidates: 1 });
    expect((await call('/duplicates/scan?full=yes', { method: 'POST' })).status).toBe(400);
    expect((await open('?status=dismissed')).data.map((c) => c.id)).toEqual([candidate.id]);
    expect((await call(`/duplicates/${candidate.id}/dismiss`, { method: 'POST' })).status).toBe(409);
    expect((await call('/duplicates/999999/dismiss', { method: 'POST' })).status).toBe(404);
  });
});
