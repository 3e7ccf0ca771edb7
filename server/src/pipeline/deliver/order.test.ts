// Per-profile delivery order kept by the ledger (order.ts): a retried event holds back its own
// profile's later events (`waiting`, no job) and nobody else's; they go once it is delivered, dead or
// skipped; the sweep promotes rows a crash left waiting; a replay keeps each profile's order; an
// upgrade from the key_strict_fifo queues of earlier versions loses nothing.
import { randomUUID } from 'node:crypto';
import { PgBoss } from 'pg-boss';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../../server.ts';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  sendEvents,
  startReceiver,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

/** One request the receiver got: the event's name and the status it answered (0 while still open). */
interface Arrival {
  user: string;
  event: string;
  status: number;
}

/** A real HTTP receiver; `decide` picks each answer from the event's name (200 when it returns nothing). */
async function receiver(decide: (event: string, user: string) => number | undefined = () => 200) {
  const of = (body: Any) => ({ user: String(body.profile?.userId ?? ''), event: String(body.event?.event ?? '') });
  const hook = await startReceiver({
    answer: (r) => {
      const { user, event } = of(r.body);
      return { status: decide(event, user) ?? 200 };
    },
  });
  const arrivals = (): Arrival[] => hook.requests.map((r) => ({ ...of(r.body), status: r.status ?? 0 }));
  return {
    arrivals,
    /** The events of a user that were answered 2xx, in arrival order. */
    delivered: (user: string) =>
      arrivals()
        .filter((a) => a.user === user && a.status >= 200 && a.status < 300)
        .map((a) => a.event),
    url: hook.url,
    close: hook.close,
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Client helpers for one running Cairn. */
function client(cairn: () => Cairn) {
  const api = async (path: string, init: RequestInit = {}): Promise<{ status: number; body: Any }> => {
    const res = await fetch(`${cairn().url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/json', ...init.headers },
    });
    return { status: res.status, body: res.status === 204 ? null : await res.json() };
  };
  return {
    api,
    send: (...events: object[]) => sendEvents(cairn(), cairn().demoSource!.writeKey, events),
    webhook: async (url: string, extra: object = {}): Promise<string> => {
      const created = await api('/destinations', {
        method: 'POST',
        body: JSON.stringify({ name: 'ordered', plugin: 'webhook', settings: { url }, ...extra }),
      });
      expect(created.status).toBe(201);
      return created.body.id;
    },
    /** Ledger rows of a destination, oldest first. */
    ledger: async (id: string, status?: string): Promise<Any[]> =>
      (await api(`/destinations/${id}/deliveries?limit=1000${status ? `&status=${status}` : ''}`)).body.data.reverse(),
  };
}

const track = (userId: string, event: string, extra: object = {}) => ({ type: 'track', userId, event, ...extra });

describe.each(['postgres', 'embedded'] as const)('delivery order on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  const run = randomUUID().slice(0, 8);
  const { api, send, webhook, ledger } = client(() => cairn);

  beforeAll(async () => {
    db = await createTestDatabase(`order.test.ts:${mode}`, mode);
    cairn = await startTestCairn({
      ...db.env,
      CAIRN_DELIVERY_RETRY_DELAY_S: '1',
      CAIRN_DELIVERY_RETRY_MAX_S: '1',
      // No sweep during these tests: what moves a line here is the sender (or the replay) alone.
      CAIRN_DELIVERY_SWEEP_S: '3600',
    });
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it("a retried event holds back only its own profile's later events; they arrive in order", async () => {
    let refuse = true;
    const [a, b] = [`a-${run}`, `b-${run}`];
    const hook = await receiver((event) => (event === 'A1' && refuse ? 503 : 200));
    const id = await webhook(hook.url);
    await send(track(a, 'A1'));
    await until('A1 retried', async () => (await ledger(id, 'retrying')).length === 1);
    await send(track(a, 'A2'), track(b, 'B1'), track(a, 'A3'), track(b, 'B2'));
    // Another profile is not held back while A1 is retried...
    await until('B1 and B2', async () => hook.delivered(b).length === 2);
    expect(hook.delivered(b)).toEqual(['B1', 'B2']);
    // ...while A's later events wait, without a job, with a reason.
    const waiting = await until('A2 and A3 waiting', async () => {
      const rows = await ledger(id, 'waiting');
      return rows.length === 2 ? rows : undefined;
    });
    expect(waiting.map((r) => r.reason)).toEqual([
      'behind an earlier event of this profile',
      'behind an earlier event of this profile',
    ]);
    expect(hook.arrivals().filter((x) => x.event === 'A2' || x.event === 'A3')).toEqual([]);
    await until('B1 and B2 in the ledger', async () => (await ledger(id, 'delivered')).length === 2);
    const counts = (await api(`/destinations/${id}`)).body.deliveries;
    expect(counts).toMatchObject({ pending: 0, waiting: 2, retrying: 1, delivered: 2 });
    refuse = false;
    await until('A1, A2, A3', async () => hook.delivered(a).length === 3);
    expect(hook.delivered(a)).toEqual(['A1', 'A2', 'A3']);
    expect(hook.arrivals().filter((x) => x.event === 'A1' && x.status === 503).length).toBeGreaterThanOrEqual(1);
    await until('a settled ledger', async () => (await ledger(id, 'delivered')).length === 5);
    await api(`/destinations/${id}`, { method: 'DELETE' });
    await hook.close();
  });

  it('waiting events go once the event ahead of them is dead', async () => {
    let answer = 503;
    const c = `c-${run}`;
    const hook = await receiver((event) => (event === 'C1' ? answer : 200));
    const id = await webhook(hook.url);
    await send(track(c, 'C1'));
    await until('C1 retried', async () => (await ledger(id, 'retrying')).length === 1);
    await send(track(c, 'C2'), track(c, 'C3'));
    await until('C2 and C3 waiting', async () => (await ledger(id, 'waiting')).length === 2);
    answer = 400; // refused for good: C1 is dead, the line moves on
    await until('C2, C3', async () => hook.delivered(c).length === 2);
    expect(hook.delivered(c)).toEqual(['C2', 'C3']);
    const rows = await ledger(id);
    expect(rows.map((r) => r.status)).toEqual(['dead', 'delivered', 'delivered']);
    await api(`/destinations/${id}`, { method: 'DELETE' });
    await hook.close();
  });

  it('waiting events go once the event ahead of them is skipped', async () => {
    let refuse = true;
    const d = `d-${run}`;
    const hook = await receiver(() => (refuse ? 503 : 200));
    const id = await webhook(hook.url, { purposes: ['marketing'] });
    await send(track(d, 'D1', { context: { consent: { categoryPreferences: { marketing: true } } } }));
    const [head] = await until('D1 retried', async () => {
      const r = await ledger(id, 'retrying');
      return r.length === 1 ? r : undefined;
    });
    await send(track(d, 'D2'), track(d, 'D3'));
    await until('D2 and D3 waiting', async () => (await ledger(id, 'waiting')).length === 2);
    // Consent withdrawn while D1 waits for its retry: D1 is skipped at its next attempt, which frees
    // D2 and D3; they are checked in turn (and skipped: consent is read at send time).
    const put = await api(`/profiles/${head.profileId}/consent`, {
      method: 'PUT',
      body: JSON.stringify({ purposes: { marketing: false } }),
    });
    expect(put.status).toBe(200);
    refuse = false;
    const rows = await until('every row final', async () => {
      const r = await ledger(id);
      return r.every((x) => x.status === 'skipped') ? r : undefined;
    });
    expect(rows.map((r) => r.reason)).toEqual(Array(3).fill('consent: marketing not granted'));
    expect(hook.delivered(d)).toEqual([]);
    await api(`/destinations/${id}`, { method: 'DELETE' });
    await hook.close();
  });

  it("replay keeps each profile's order: replayed events wait behind the profile's unfinished ones", async () => {
    const [f, g] = [`f-${run}`, `g-${run}`];
    let phase: 'refuse' | 'replay' | 'ok' = 'refuse';
    let holdF5 = true;
    let flaked = false;
    const hook = await receiver((event) => {
      if (phase === 'refuse') return 400;
      if (event === 'F5' && holdF5) return 503;
      if (phase === 'replay' && event === 'F2' && !flaked) {
        flaked = true;
        return 503;
      }
      return 200;
    });
    const id = await webhook(hook.url);
    const at = (i: number) => ({ timestamp: new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString() });
    await send(...[1, 2, 3, 4].flatMap((i) => [track(f, `F${i}`, at(i)), track(g, `G${i}`, at(i))]));
    await until('dead letters', async () => (await ledger(id, 'dead')).length === 8);
    // A newer event of F is being retried when the dead letters are replayed: F's replayed events
    // wait behind it (G's have nothing ahead of them and go at once).
    phase = 'replay';
    await send(track(f, 'F5', at(5)));
    await until('F5 retried', async () => (await ledger(id, 'retrying')).length === 1);
    const replay = await api(`/destinations/${id}/replay`, { method: 'POST', body: '{}' });
    expect(replay.body.replayed).toBe(8);
    await until('G1..G4', async () => hook.delivered(g).length === 4);
    expect(hook.delivered(g)).toEqual(['G1', 'G2', 'G3', 'G4']);
    expect((await ledger(id, 'waiting')).length).toBe(4);
    expect(hook.delivered(f)).toEqual([]);
    holdF5 = false;
    await until('F5, F1..F4', async () => (await ledger(id, 'delivered')).length === 9);
    expect(flaked).toBe(true); // F2 was retried once: F3 and F4 waited for it
    expect(hook.delivered(f)).toEqual(['F5', 'F1', 'F2', 'F3', 'F4']);
    // A time-range replay of delivered events: each profile's in ledger order again.
    phase = 'ok';
    const range = await api(`/destinations/${id}/replay`, {
      method: 'POST',
      body: JSON.stringify({ from: new Date(Date.UTC(2026, 0, 1)).toISOString(), to: new Date().toISOString() }),
    });
    expect(range.body.replayed).toBe(9);
    await until('the range replay', async () => hook.delivered(f).length === 10 && hook.delivered(g).length === 8);
    expect(hook.delivered(f).slice(5)).toEqual(['F1', 'F2', 'F3', 'F4', 'F5']);
    expect(hook.delivered(g).slice(4)).toEqual(['G1', 'G2', 'G3', 'G4']);
    await api(`/destinations/${id}`, { method: 'DELETE' });
    await hook.close();
  });
});

describe.each(['postgres', 'embedded'] as const)('the sweep of waiting deliveries on %s', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  let db: TestDatabase;
  let cairn: Cairn;
  const run = randomUUID().slice(0, 8);
  const { api, send, webhook, ledger } = client(() => cairn);

  beforeAll(async () => {
    db = await createTestDatabase(`order.test.ts:sweep:${mode}`, mode);
    cairn = await startTestCairn({ ...db.env, CAIRN_DELIVERY_SWEEP_S: '1' });
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('the sweep sends rows a crash left waiting, in order', async () => {
    const e = `e-${run}`;
    const hook = await receiver();
    const id = await webhook(hook.url);
    await send(track(e, 'E1'), track(e, 'E2'), track(e, 'E3'));
    await until('E1..E3', async () => (await ledger(id, 'delivered')).length === 3);
    expect(hook.delivered(e)).toEqual(['E1', 'E2', 'E3']);
    // What a crash between a replay's reset and its promotion leaves: waiting rows, no job, nothing ahead.
    const reset = await cairn.sql`
      UPDATE deliveries SET status = 'waiting' WHERE destination_id = ${id}`;
    expect(reset.count).toBe(3);
    await until('the sweep', async () => hook.delivered(e).length === 6);
    expect(hook.delivered(e)).toEqual(['E1', 'E2', 'E3', 'E1', 'E2', 'E3']);
    await until('a settled ledger', async () => (await ledger(id, 'delivered')).length === 3);
    await api(`/destinations/${id}`, { method: 'DELETE' });
    await hook.close();
  });
});

describe('upgrade from key_strict_fifo delivery queues (postgres)', () => {
  if (POSTGRES_SKIP_REASON !== null) {
    it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
    return;
  }
  let db: TestDatabase;
  let cairn: Cairn | undefined;
  const { send, webhook, ledger } = client(() => cairn!);
  const env = () => ({ ...db.env, CAIRN_DELIVERY_RETRY_DELAY_S: '1', CAIRN_DELIVERY_RETRY_MAX_S: '1' });

  beforeAll(async () => {
    db = await createTestDatabase('order.test.ts:upgrade', 'postgres');
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('moves the queued deliveries of a FIFO queue to a standard one, in order, losing none', async () => {
    let refuse = true;
    const hook = await receiver(() => (refuse ? 503 : 200));
    cairn = await startTestCairn(env());
    const id = await webhook(hook.url);
    const users = ['u1', 'u2', 'u3'];
    for (let i = 1; i <= 4; i++) await send(...users.map((u) => track(u, `${u}-${i}`)));
    await until('12 ledger rows', async () => (await ledger(id)).length === 12);
    await cairn.close();
    cairn = undefined;

    // The state an earlier version leaves: the queue is key_strict_fifo, every unfinished row is
    // pending or retrying, each with a job keyed by its profile (none waiting).
    const boss = new PgBoss({ connectionString: db.url!, schema: 'pgboss', supervise: false, schedule: false });
    boss.on('error', () => {});
    await boss.start();
    const queue = `deliver.${id}`;
    await boss.deleteQueue(queue);
    await boss.createQueue(queue, { policy: 'key_strict_fifo', retryLimit: 100_000, retryDelay: 1 });
    const sql = postgres(db.url!, { max: 1, onnotice: () => {} });
    const rows = await sql<{ id: string; profile_id: string }[]>`
      UPDATE deliveries SET status = 'pending' WHERE destination_id = ${id} AND status <> 'delivered'
      RETURNING id::text, profile_id::text`;
    expect(rows.length).toBe(12);
    for (const r of rows.sort((x, y) => Number(x.id) - Number(y.id))) {
      await boss.send(queue, { ids: [r.id] }, { singletonKey: r.profile_id });
    }
    await boss.stop({ graceful: false, close: true });

    refuse = false;
    cairn = await startTestCairn(env());
    const [policy] = await sql<{ policy: string }[]>`SELECT policy FROM pgboss.queue WHERE name = ${queue}`;
    expect(policy!.policy).toBe('standard');
    await until('every delivery', async () => (await ledger(id, 'delivered')).length === 12, 60_000);
    for (const u of users) expect(hook.delivered(u)).toEqual([1, 2, 3, 4].map((i) => `${u}-${i}`));
    await sql.end();
    await hook.close();
  });
});
