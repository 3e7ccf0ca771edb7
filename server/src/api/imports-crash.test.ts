import { Readable } from 'node:stream';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../testing/db.ts';
import { describeOnPostgres } from '../testing/flows.ts';
import { type ServerProcess, spawnServer, TEST_ADMIN_KEY } from '../testing/server.ts';
import { chunks, generate } from './imports-fixture.ts';

// A server SIGKILLed in the middle of an import; a new server, the same file sent again to the same
// import: every row is written once (no duplicate profile, identity or event), every bad row reported once.

const ROWS = 30_000;
const MAP =
  'id=identity:userId,email=identity:email,name=trait:name,birthday=trait:birthday:date,newsletter=consent:marketing';

interface ImportJson {
  id: string;
  status: string;
  lastLine: number;
  rowsDone: number;
  rowsBad: number;
  profilesCreated: number;
}

describeOnPostgres('bulk import after SIGKILL on %s', (mode) => {
  let db: TestDatabase;
  let server: ServerProcess | undefined;
  const file = generate(ROWS, 'k');
  const env = () => ({ ...db.env, CAIRN_REQUEST_TIMEOUT_MS: '600000' });
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${server!.url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, ...(init.headers ?? {}) },
    });
  const put = (id: string) =>
    call(`/imports/${id}/data`, {
      method: 'PUT',
      headers: { 'content-type': 'text/csv' },
      body: Readable.toWeb(Readable.from(chunks(file.text, 16_384))) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
  const state = async (id: string) => (await (await call(`/imports/${id}`)).json()) as ImportJson;

  beforeAll(async () => {
    db = await createTestDatabase('api/imports-crash.test.ts', mode);
    server = await spawnServer(env());
  }, 120_000);
  afterAll(async () => {
    server?.proc.kill('SIGKILL');
    await server?.exited;
    await db?.drop();
  });

  it('resumes from the last committed line without duplicates', async () => {
    const created = await call('/imports', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ format: 'csv', map: MAP, rows: ROWS }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as ImportJson;
    const upload = put(id).catch(() => undefined);
    // Killed once a few chunks are committed, well before the end.
    for (;;) {
      const s = await state(id);
      if (s.lastLine > 4000) break;
      expect(s.status).toBe('running');
      await new Promise((r) => setTimeout(r, 50));
    }
    server!.proc.kill('SIGKILL');
    await server!.exited;
    await upload;
    server = await spawnServer(env());
    const before = await state(id);
    expect(before.lastLine).toBeGreaterThan(4000);
    expect(before.lastLine).toBeLessThan(ROWS + 1);

    const res = await put(id);
    const done = (await res.json()) as ImportJson;
    expect(res.status, JSON.stringify(done)).toBe(200);
    expect(done).toMatchObject({ status: 'done', rowsDone: ROWS, rowsBad: file.bad.size });
    expect(done.profilesCreated).toBe(ROWS - file.bad.size);
    const lines: number[] = [];
    for (let after = 0; ; ) {
      const page = (await (await call(`/imports/${id}/errors?after=${after}&limit=1000`)).json()) as {
        data: { line: number }[];
        next: number | null;
      };
      lines.push(...page.data.map((e) => e.line));
      if (page.next === null) break;
      after = page.next;
    }
    expect(lines).toEqual([...file.bad.keys()].sort((a, b) => a - b));
    const sql = postgres(db.url!, { max: 1 });
    try {
      const [c] = await sql<{ ids: string; events: string; profiles: string }[]>`
        SELECT (SELECT count(*) FROM identities WHERE key LIKE 'userId:k%') AS ids,
          (SELECT count(*) FROM events WHERE source_id = 'import') AS events,
          (SELECT count(*) FROM profiles) AS profiles`;
      expect(c).toEqual({
        ids: String(ROWS - file.bad.size),
        events: String(ROWS - file.bad.size),
        profiles: String(ROWS - file.bad.size),
      });
    } finally {
      await sql.end();
    }
  }, 600_000);
});
