// Issue 22: a trait refold after retention dropped the events it would read. Two people's traits are set
// only by events in a partition retention drops; then a new event merges them (their traits are folded
// again) and the merge is undone (each side folded again). The fold baselines recorded before the drop
// (migration 0039) must give the same traits, first/last seen, accounts and consent as the same story with every
// event kept (the control, run first on the same server). On both databases.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refoldStates } from '../pipeline/identify/state.ts';
import type { Cairn } from '../server.ts';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  settle,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../testing/index.ts';
import { runRetention } from './retention.ts';
import { recordBaselines } from './retention-baseline.ts';
import { dropEventPartition, eventPartitions } from './retention-queries.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;
const T0 = Date.UTC(2026, 5, 1, 12);
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();
const DAY = 24 * 60 * 60 * 1000;
const KEEP_FOREVER = { eventDays: null, deliveryDays: null, flowRunDays: null };

/** What one story's profiles look like at a step: each trait's value and time, and the accounts. */
interface Snapshot {
  user: Record<string, unknown>;
  device: Record<string, unknown>;
  same: boolean;
}

describe.each(['postgres', 'embedded'] as const)('a trait refold after retention on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  const run = randomUUID().slice(0, 8);
  const fold = () => ({ traits: {}, pii: cairn.pii });

  const api = async (path: string, init: RequestInit = {}): Promise<{ status: number; body: Any }> => {
    const res = await fetch(`${cairn.url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json', ...init.headers },
    });
    return { status: res.status, body: await res.json() };
  };
  const send = async (...events: object[]) => {
    await sendEvents(cairn, cairn.demoSource!.writeKey, events);
    await settle(cairn.sql);
  };
  const lookup = async (query: string): Promise<Any> => {
    const { status, body } = await api(`/profiles?${query}`);
    expect(status).toBe(200);
    return (await api(`/profiles/${body.data[0].id}`)).body;
  };
  // Trait values and times, and account memberships: ids differ between the two stories, nothing else may.
  const view = (p: Any) => ({
    ...Object.fromEntries(
      Object.entries(p.traits as Record<string, Any>).map(([k, t]) => [k, [t.value, t.updatedAt ?? t.ts, t.source]]),
    ),
    accounts: (p.accounts as Any[]).map((a) => [a.firstSeenAt, a.lastSeenAt, a.traits]),
    consent: p.consent,
  });
  const snapshot = async (u: string, d: string): Promise<Snapshot> => {
    const [user, device] = [await lookup(`userId=${u}`), await lookup(`anonymousId=${d}`)];
    return { user: view(user), device: view(device), same: user.id === device.id };
  };

  /** Each person's own history: a user with a plan, a campaign and an account; a device seen earlier. */
  const history = async (u: string, d: string) =>
    send(
      {
        type: 'identify',
        userId: u,
        traits: { plan: 'pro', company: 'Acme', $add: { logins: 2 } },
        context: { campaign: { source: 'news', name: 'spring' } },
        timestamp: at(0),
      },
      { type: 'group', userId: u, groupId: `acct-${u}`, traits: { name: 'Acme' }, timestamp: at(1) },
      {
        type: 'page',
        anonymousId: d,
        name: 'Home',
        context: { traits: { color: 'red' }, consent: { categoryPreferences: { marketing: true } } },
        timestamp: at(-10),
      },
      { type: 'identify', anonymousId: d, traits: { color: 'blue', size: 'L' }, timestamp: at(2) },
    );

  /** The event that merges them, then the undo of that merge: snapshots after each. */
  const mergeAndUndo = async (u: string, d: string): Promise<[Snapshot, Snapshot]> => {
    await send({ type: 'identify', userId: u, anonymousId: d, traits: { tier: 'gold' }, timestamp: at(5) });
    const merged = await snapshot(u, d);
    expect(merged.same, 'the event merged the two profiles').toBe(true);
    const survivor = await lookup(`userId=${u}`);
    const merge = (await api(`/profiles/${survivor.id}/merges`)).body.data.find((m: Any) => m.kind === 'merge');
    const undo = await api(`/profiles/${survivor.id}/unmerge`, {
      method: 'POST',
      body: JSON.stringify({ mergeId: merge.id }),
    });
    expect(undo.status, JSON.stringify(undo.body)).toBe(200);
    const undone = await snapshot(u, d);
    expect(undone.same, 'the undo split them again').toBe(false);
    return [merged, undone];
  };

  beforeAll(async () => {
    db = await createTestDatabase(`retention-refold.test.ts:${mode}`, mode);
    cairn = await startTestCairn(db.env);
  }, 120_000);
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('traits set only by dropped events survive a merge and its undo', async () => {
    // The control: the same story with every event kept.
    const [cu, cd] = [`ctl-user-${run}`, `ctl-dev-${run}`];
    await history(cu, cd);
    const controlBefore = await snapshot(cu, cd);
    const [controlMerged, controlUndone] = await mergeAndUndo(cu, cd);
    expect(controlMerged.user).toMatchObject({
      plan: ['pro', at(0), 'identify'],
      color: ['blue', at(2), 'identify'],
      consent: { marketing: expect.objectContaining({ granted: true, at: at(-10) }) },
    });
    expect(controlUndone.user.consent).toEqual({});

    // The story under test: the history only in a partition that retention then drops.
    const [u, d] = [`user-${run}`, `dev-${run}`];
    await history(u, d);
    const sql = cairn.sql;
    const [part] = await sql<{ part: string }[]>`
      SELECT DISTINCT tableoid::regclass::text AS part FROM events WHERE user_id = ${u}`;
    const bounds = (await eventPartitions(sql)).find((p) => p.name === part!.part)!;
    const report = await runRetention(
      sql,
      { ...KEEP_FOREVER, eventDays: 1 },
      new Date(bounds.upperBound.getTime() + DAY),
      fold(),
    );
    expect(report.dropped).toContain(part!.part);
    expect(report.baselines).toBeGreaterThanOrEqual(2);
    expect(await sql`SELECT 1 FROM events WHERE user_id = ${u} OR anonymous_id = ${d}`).toHaveLength(0);
    // The month the server receives in has its partition again (the drop, run as if a month later, took
    // it): a new table, whose events no baseline holds.
    await runRetention(sql, KEEP_FOREVER, new Date(), fold());
    expect(await snapshot(u, d), 'a drop changes no profile').toEqual(controlBefore);

    const [merged, undone] = await mergeAndUndo(u, d);
    expect(merged, 'the merge refolds from the baselines as from the events').toEqual(controlMerged);
    expect(undone, 'the undo gives each side back its own').toEqual(controlUndone);

    // Retention runs again over the partition holding the merge event: baselines carry forward.
    const [again] = await sql<{ part: string }[]>`
      SELECT DISTINCT tableoid::regclass::text AS part FROM events WHERE user_id = ${u}`;
    const next = (await eventPartitions(sql)).find((p) => p.name === again!.part)!;
    const second = await runRetention(
      sql,
      { ...KEEP_FOREVER, eventDays: 1 },
      new Date(next.upperBound.getTime() + DAY),
      fold(),
    );
    expect(second.dropped).toContain(again!.part);
    await runRetention(sql, KEEP_FOREVER, new Date(), fold());
    // An event older than everything folded: a refold, from the baseline, with the earlier first touch.
    await send({ type: 'track', userId: u, event: 'Late', timestamp: at(-20) });
    const user = await lookup(`userId=${u}`);
    expect(view(user)).toMatchObject({
      plan: ['pro', at(0), 'identify'],
      tier: ['gold', at(5), 'identify'],
      logins: [2, at(0), 'identify'],
      initial_utm_source: ['news', at(0), 'computed'],
      first_seen_at: [at(-20), at(-20), 'computed'],
      last_seen_at: [at(5), at(5), 'computed'],
    });

    // Erasure takes the baselines of the person's identities with it.
    const keys = (user.identities as Any[]).map((i) => `${i.type}:${i.value}`);
    expect((await sql`SELECT 1 FROM fold_baselines WHERE identity_key = ANY(${keys}::text[])`).length).toBeGreaterThan(
      0,
    );
    expect((await api(`/profiles/${user.id}`, { method: 'DELETE' })).status).toBe(200);
    expect(await sql`SELECT 1 FROM fold_baselines WHERE identity_key = ANY(${keys}::text[])`).toHaveLength(0);
  }, 120_000);

  it('a crash between recording and the drop counts nothing twice and loses nothing', async () => {
    const u = `crash-${run}`;
    await send({ type: 'identify', userId: u, traits: { $add: { logins: 2 }, plan: 'pro' }, timestamp: at(10) });
    const sql = cairn.sql;
    const profileId = (await lookup(`userId=${u}`)).id;
    const [row] = await sql<{ part: string }[]>`
      SELECT DISTINCT tableoid::regclass::text AS part FROM events WHERE user_id = ${u}`;
    const part = (await eventPartitions(sql)).find((p) => p.name === row!.part)!;
    const refold = async () => {
      const state = (await sql.begin((tx) => refoldStates(tx, [profileId], {}, cairn.pii))).get(profileId)!;
      return Object.fromEntries([...state.traits].map(([k, t]) => [k, t.value]));
    };
    const recorded = await recordBaselines(sql, part, fold());
    expect(recorded.identities).toBeGreaterThanOrEqual(1);
    const stored = () =>
      sql<{ traits: Record<string, { v: unknown }> }[]>`
        SELECT traits FROM fold_baselines WHERE identity_key = ${`userId:${u}`}`;
    expect((await stored())[0]!.traits.logins!.v).toBe(2);
    // Recorded, not dropped yet: a refold does not add the events the baseline holds once more.
    expect(await refold()).toMatchObject({ logins: 2, plan: 'pro' });
    // The run crashed before the drop; the next one records again: nothing is folded twice.
    await recordBaselines(sql, part, fold());
    expect((await stored())[0]!.traits.logins!.v).toBe(2);
    await dropEventPartition(sql, part.name);
    expect(await refold()).toMatchObject({ logins: 2, plan: 'pro', first_seen_at: at(10) });
    await runRetention(sql, KEEP_FOREVER, new Date(), fold());
  }, 60_000);
});
