import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { importCommand } from '../cli/import.ts';
import type { Cairn } from '../server.ts';
import {
  type ApiAnswer,
  adminApi,
  approveAndPublish,
  createTestDatabase,
  describeOnPostgres,
  type Receiver,
  sendEvents,
  settle,
  startReceiver,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
  until,
} from '../testing/index.ts';
import { CSV_MAP, csvHistory, HISTORY_END, ndjsonHistory } from './imports-events-fixture.ts';
import { chunks } from './imports-fixture.ts';

// Historical events import on a real Postgres through the real server: 10k NDJSON events and a CSV, each
// with 1% bad rows reported exactly by line; a second import stores nothing; the events go through the
// pipeline (profiles, traits by event time, audiences) but start no flow and reach no destination, while
// a live event of the same name does both; with triggerFlows (deliver) they start flows (are delivered).

const STAGES = ['identify', 'compute', 'automate', 'fanout', 'measure'];

interface ImportJson {
  id: string;
  kind: string;
  status: string;
  lastLine: number;
  rowsDone: number;
  rowsBad: number;
  rowsUnchanged: number;
  eventsStored: number;
  [k: string]: unknown;
}

describeOnPostgres('historical events import on %s', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  let api: (path: string, init?: RequestInit) => Promise<ApiAnswer>;
  let receiver: Receiver;
  let flowId: string;
  let destinationId: string;
  const history = ndjsonHistory(10_000, 1000, 'h');
  const orders = csvHistory(2000, 'c');

  const upload = async (query: string, text: string, type = 'application/x-ndjson', method = 'POST', path = '') => {
    const res = await fetch(`${cairn.url}/api/imports${path}${query}`, {
      method,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': type },
      // In 64 KB pieces: the server reads while it receives.
      body: Readable.toWeb(Readable.from(chunks(text, 65_536))) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    const body = (await res.json()) as ImportJson;
    expect(res.status, JSON.stringify(body)).toBe(200);
    return body;
  };
  const errorsOf = async (id: string) =>
    (await api(`/imports/${id}/errors?limit=10000`)).body.data as { line: number; reason: string }[];
  const expectErrors = async (id: string, bad: Map<number, string>) => {
    const errors = await errorsOf(id);
    expect(errors.map((e) => e.line)).toEqual([...bad.keys()].sort((a, b) => a - b));
    for (const e of errors) expect(e.reason).toContain(bad.get(e.line));
  };
  const idle = () => settle(cairn.sql, { queues: STAGES, timeoutMs: 60_000 });
  const counts = async () => {
    const [c] = await cairn.sql<Record<string, number>[]>`
      SELECT (SELECT count(*)::int FROM events WHERE source_id = 'import') AS imported,
        (SELECT count(*)::int FROM events) AS events,
        (SELECT count(*)::int FROM profiles) AS profiles,
        (SELECT count(*)::int FROM identities) AS identities,
        (SELECT count(*)::int FROM profile_traits) AS traits,
        (SELECT count(*)::int FROM audience_memberships) AS memberships,
        (SELECT count(*)::int FROM flow_runs) AS runs,
        (SELECT count(*)::int FROM deliveries) AS deliveries`;
    return c!;
  };
  const runsOf = async (userIds: string[]) => {
    const [r] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM flow_runs r JOIN identities i ON i.profile_id = r.profile_id
      WHERE r.flow_id = ${flowId} AND i.key = ANY(${userIds.map((u) => `userId:${u}`)}::text[])`;
    return r!.n;
  };
  const deliveriesOf = async (userIds: string[]) => {
    const [r] = await cairn.sql<{ n: number }[]>`
      SELECT count(*)::int AS n
      FROM deliveries d
        JOIN identities i ON i.profile_id = d.profile_id
        JOIN events e ON e.id = d.event_id
      WHERE d.destination_id = ${destinationId} AND i.key = ANY(${userIds.map((u) => `userId:${u}`)}::text[])
        AND e.event = 'Order Completed'`;
    return r!.n;
  };
  const post = (path: string, body: unknown) => api(path, { method: 'POST', body: JSON.stringify(body) });

  beforeAll(async () => {
    db = await createTestDatabase('api/imports-events.test.ts', mode);
    cairn = await startTestCairn({ ...db.env, CAIRN_REQUEST_TIMEOUT_MS: '600000' });
    api = adminApi(cairn.url);
    receiver = await startReceiver();
    const dest = await post('/destinations', {
      name: 'orders',
      plugin: 'webhook',
      settings: { url: receiver.url },
      filter: { event: ['Order Completed'] },
    });
    expect(dest.status, dest.text).toBe(201);
    destinationId = dest.body.id;
    const flow = await post('/flows', {
      definition: {
        version: 1,
        name: 'Thanks for the order',
        trigger: { type: 'event', event: 'Order Completed' },
        entry: { reentry: 'every_time' },
        nodes: [{ id: 'x', type: 'exit' }],
        edges: [],
      },
    });
    expect(flow.status, flow.text).toBe(201);
    flowId = flow.body.id;
    expect((await approveAndPublish(cairn.url, flowId)).status).toBe(200);
    for (const [key, within] of [
      ['ever_ordered', undefined],
      ['ordered_today', { last: 24, unit: 'hours' }],
    ] as const) {
      const a = await post('/audiences', {
        key,
        name: key,
        rule: { op: 'performed', event: 'Order Completed', ...(within ? { within } : {}) },
      });
      expect(a.status, a.text).toBe(201);
    }
    // Consequences of imported history (entering an audience, a watched trait changing) start no flow either.
    const planFlow = await post('/flows', {
      definition: {
        version: 1,
        name: 'Plan changed',
        trigger: { type: 'trait_changed', trait: 'plan' },
        entry: { reentry: 'every_time' },
        nodes: [{ id: 'x', type: 'exit' }],
        edges: [],
      },
    });
    expect(planFlow.status, planFlow.text).toBe(201);
    expect((await approveAndPublish(cairn.url, planFlow.body.id)).status).toBe(200);
    const welcome = await post('/flows', {
      definition: {
        version: 1,
        name: 'Welcome, first-time buyer',
        trigger: { type: 'audience_entered', audience: 'ever_ordered' },
        entry: { reentry: 'every_time' },
        nodes: [{ id: 'x', type: 'exit' }],
        edges: [],
      },
    });
    expect(welcome.status, welcome.text).toBe(201);
    expect((await approveAndPublish(cairn.url, welcome.body.id)).status).toBe(200);
  }, 120_000);
  afterAll(async () => {
    await cairn?.close();
    await receiver?.close();
    await db?.drop();
  });

  it('a dry run reports what would be stored and stores nothing', async () => {
    const before = await counts();
    const imp = await upload('?kind=events&format=ndjson&dryRun=true', history.text);
    expect(imp).toMatchObject({ kind: 'events', status: 'done', rowsDone: 10_000, rowsBad: history.bad.size });
    expect(imp.eventsStored).toBe(history.good);
    expect(await counts()).toEqual(before);
  }, 60_000);

  it('imports 10k NDJSON events and a CSV, and reports exactly the bad rows by line', async () => {
    const imp = await upload(`?kind=events&format=ndjson&rows=10000`, history.text);
    expect(imp).toMatchObject({ status: 'done', rowsDone: 10_000, rowsBad: history.bad.size, rowsUnchanged: 0 });
    expect(imp.eventsStored).toBe(history.good);
    expect(imp.rowsPerSecond).toBeGreaterThan(0);
    await expectErrors(imp.id, history.bad);

    const csv = await upload(`?kind=events&format=csv&map=${encodeURIComponent(CSV_MAP)}`, orders.text, 'text/csv');
    expect(csv).toMatchObject({ status: 'done', rowsDone: 2000, rowsBad: orders.bad.size, eventsStored: orders.good });
    await expectErrors(csv.id, orders.bad);

    await idle();
    const c = await counts();
    expect(c.imported).toBe(history.good + orders.good);
    const [u] = await cairn.sql<{ unattached: number }[]>`
      SELECT count(*)::int AS unattached FROM events WHERE source_id = 'import' AND profile_id IS NULL`;
    expect(u!.unattached).toBe(0);
    // Typed and kept as in the file: revenue a number, the quoted note with its comma, the original time.
    const [row] = await cairn.sql<{ revenue: unknown; note: string; timestamp: Date }[]>`
      SELECT payload->'properties'->'revenue' AS revenue, payload->'properties'->>'note' AS note, timestamp
      FROM events WHERE source_id = 'import' AND type = 'track' AND payload->'properties'->>'note' = 'order 1, paid'`;
    expect(row).toMatchObject({ revenue: 2.5, timestamp: new Date(HISTORY_END - 3_600_000) });
  }, 120_000);

  it('folds traits by event time: an older identify stored later does not win', async () => {
    // (People n ≡ 51 mod 100 have only bad rows: no profile.)
    const people = ['h0', 'h1', 'h500', 'h999'];
    for (const userId of people) {
      const found = await api(`/profiles?userId=${userId}`);
      const profile = await api(`/profiles/${found.body.data[0].id}`);
      expect(profile.body.traits.plan?.value, userId).toBe(history.plans.get(userId));
    }
    const [pro] = await cairn.sql<{ pro: number }[]>`
      SELECT count(*)::int AS pro FROM profile_traits WHERE key = 'plan' AND value = '"pro"'::jsonb`;
    expect(pro!.pro).toBe([...history.plans.values()].filter((p) => p === 'pro').length);
  });

  it('audiences follow event time; no flow and no delivery for imported events, a live one triggers both', async () => {
    const [m] = await cairn.sql<{ ever: number; today: number }[]>`
      SELECT count(*) FILTER (WHERE audience = 'ever_ordered' AND exited_at IS NULL)::int AS ever,
        count(*) FILTER (WHERE audience = 'ordered_today' AND exited_at IS NULL)::int AS today
      FROM audience_memberships`;
    // Everyone with an order in the files: 1000 + 50 people but the ten n ≡ 51 (mod 100) (only bad rows).
    expect(m!.ever).toBe(1040);
    // Orders a year old or more are not "in the last 24 hours".
    expect(m!.today).toBe(0);
    expect(await runsOf(['h2', 'h5', 'c1'])).toBe(0);
    expect(await deliveriesOf(['h2', 'h5', 'c1'])).toBe(0);
    const [all] = await cairn.sql<{ runs: number; deliveries: number }[]>`
      SELECT (SELECT count(*)::int FROM flow_runs) AS runs,
        -- Audience entries reach the destination's ledger too, skipped by its filter.
        (SELECT count(*)::int FROM deliveries WHERE status <> 'skipped') AS deliveries`;
    expect(all).toEqual({ runs: 0, deliveries: 0 });
    // The audience entries are recorded, under the import's reason and id.
    const [entries] = await cairn.sql<{ n: number; imported: number }[]>`
      SELECT count(*)::int AS n, count(import_id)::int AS imported
      FROM events WHERE source_id = 'cairn' AND event = 'audience.entered'`;
    expect(entries).toEqual({ n: 1040, imported: 1040 });
    const [plans] = await cairn.sql<{ n: number; imported: number }[]>`
      SELECT count(*)::int AS n, count(import_id)::int AS imported
      FROM events WHERE source_id = 'cairn' AND event = 'trait.changed'`;
    expect(plans!.n).toBeGreaterThan(0);
    expect(plans!.imported).toBe(plans!.n);

    await sendEvents(cairn, cairn.demoSource!.writeKey, [{ type: 'track', event: 'Order Completed', userId: 'h2' }]);
    await until('the live order’s flow run', async () => (await runsOf(['h2'])) === 1);
    await until('the live order’s delivery', async () => (await deliveriesOf(['h2'])) === 1);
    await until('h2 in ordered_today', async () => {
      const [r] = await cairn.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM audience_memberships WHERE audience = 'ordered_today' AND exited_at IS NULL`;
      return r!.n === 1;
    });
  }, 60_000);

  it('the same files again change nothing', async () => {
    await idle();
    const before = await counts();
    const again = await upload('?kind=events&format=ndjson', history.text);
    expect(again).toMatchObject({ rowsBad: history.bad.size, rowsUnchanged: history.good, eventsStored: 0 });
    const csv = await upload(`?kind=events&format=csv&map=${encodeURIComponent(CSV_MAP)}`, orders.text, 'text/csv');
    expect(csv).toMatchObject({ rowsBad: orders.bad.size, rowsUnchanged: orders.good, eventsStored: 0 });
    await idle();
    expect(await counts()).toEqual(before);
  }, 60_000);

  it('with triggerFlows they start flows (and reach no destination); with deliver they are delivered', async () => {
    const at = new Date(HISTORY_END).toISOString();
    const file = (users: string[]) =>
      users
        .map((userId) => JSON.stringify({ type: 'track', event: 'Order Completed', userId, timestamp: at }))
        .join('\n');
    const flows = await upload('?kind=events&format=ndjson&triggerFlows=true', file(['t1', 't2', 't3']));
    expect(flows).toMatchObject({ triggerFlows: true, deliver: false, eventsStored: 3 });
    const delivered = await upload('?kind=events&format=ndjson&deliver=true', file(['d1', 'd2']));
    expect(delivered).toMatchObject({ triggerFlows: false, deliver: true, eventsStored: 2 });
    await idle();
    await until('three runs', async () => (await runsOf(['t1', 't2', 't3'])) === 3);
    await until('two deliveries', async () => (await deliveriesOf(['d1', 'd2'])) === 2);
    expect(await deliveriesOf(['t1', 't2', 't3'])).toBe(0);
    expect(await runsOf(['d1', 'd2'])).toBe(0);
  }, 60_000);

  it('cairn import --kind events: a CSV named by its header, once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-import-events-'));
    const file = join(dir, 'orders.csv');
    const rows = Array.from(
      { length: 300 },
      (_, i) => `track,Order Completed,k${i % 7},${new Date(HISTORY_END - i * 60_000).toISOString()},${i}`,
    );
    await writeFile(file, `type,event,userId,timestamp,properties.sku\n${rows.join('\n')}\nbogus,,,,\n`);
    const key = process.env.CAIRN_API_KEY;
    process.env.CAIRN_API_KEY = TEST_ADMIN_KEY;
    try {
      const args = [file, '--kind', 'events', '--url', cairn.url];
      expect(await importCommand(args)).toBe(0);
      const [first] = await cairn.sql<ImportJson[]>`
        SELECT rows_done AS "rowsDone", rows_bad AS "rowsBad", events_stored AS "eventsStored"
        FROM imports ORDER BY id DESC LIMIT 1`;
      expect(first).toEqual({ rowsDone: 301, rowsBad: 1, eventsStored: 300 });
      expect(await importCommand(args)).toBe(0);
      const [second] = await cairn.sql<ImportJson[]>`
        SELECT rows_unchanged AS "rowsUnchanged", events_stored AS "eventsStored" FROM imports ORDER BY id DESC LIMIT 1`;
      expect(second).toEqual({ rowsUnchanged: 300, eventsStored: 0 });
    } finally {
      if (key === undefined) delete process.env.CAIRN_API_KEY;
      else process.env.CAIRN_API_KEY = key;
      await rm(dir, { recursive: true });
    }
  }, 60_000);

  it('resumes a cut upload after its last committed line, and refuses bad parameters with a reason', async () => {
    const created = await post('/imports', { kind: 'events', format: 'ndjson' });
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    const lines = Array.from({ length: 5000 }, (_, i) =>
      JSON.stringify({
        type: 'track',
        event: 'Viewed',
        userId: `r${i % 10}`,
        timestamp: new Date(HISTORY_END - i * 1000).toISOString(),
      }),
    );
    // The first 3000 lines, then the connection breaks.
    const cut = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`${lines.slice(0, 3000).join('\n')}\n`));
        setTimeout(() => controller.error(new Error('cut')), 300);
      },
    });
    await fetch(`${cairn.url}/api/imports/${id}/data`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'application/x-ndjson' },
      body: cut,
      duplex: 'half',
    } as RequestInit).catch(() => undefined);
    const mid = await until('the cut import interrupted', async () => {
      const s = (await api(`/imports/${id}`)).body as ImportJson;
      return s.status === 'interrupted' ? s : undefined;
    });
    expect(mid.lastLine).toBe(2000);
    const done = await upload('', lines.join('\n'), 'application/x-ndjson', 'PUT', `/${id}/data`);
    expect(done).toMatchObject({ status: 'done', rowsDone: 5000, eventsStored: 5000, rowsUnchanged: 0 });

    const bad = await post('/imports', { kind: 'events', format: 'csv', map: 'x=properties' + '.a:date' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('type must be one of');
    const header = await fetch(`${cairn.url}/api/imports?kind=events&format=csv`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'text/csv' },
      body: 'type,when\ntrack,2024-01-01T00:00:00Z\n',
    });
    expect(header.status).toBe(400);
    expect(((await header.json()) as { error: { message: string } }).error.message).toContain('column when');
    const absent = await fetch(
      `${cairn.url}/api/imports?kind=events&format=csv&map=${encodeURIComponent('nope=userId')}`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, 'content-type': 'text/csv' },
        body: 'type,userId\ntrack,u1\n',
      },
    );
    expect(absent.status).toBe(400);
    expect(((await absent.json()) as { error: { message: string } }).error.message).toBe(
      'map: column nope is not in the header',
    );
  }, 60_000);
});
