import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isSealed } from '../pii/index.ts';
import type { Cairn } from '../server.ts';
import { createTestDatabase, type TestDatabase } from '../testing/db.ts';
import { describeOnPostgres } from '../testing/flows.ts';
import { startTestCairn, TEST_ADMIN_KEY } from '../testing/server.ts';
import { chunks, generate } from './imports-fixture.ts';

// Bulk import of profiles on a real Postgres through the real server: a generated 100k-row CSV with 1%
// bad rows (wrong dates, bad emails, duplicate ids) imports once and reports exactly those rows by line;
// the same file again changes nothing; a dry run changes nothing and reports what would; PII is sealed
// at rest; an upload cut in the middle resumes without duplicates.

const ROWS = 100_000;

interface ImportJson {
  id: string;
  status: string;
  lastLine: number;
  rowsBad: number;
  rowsUnchanged: number;
  profilesCreated: number;
  [k: string]: unknown;
}
const MAP =
  'id=identity:userId,email=identity:email,name=trait:name,birthday=trait:birthday:date,' +
  'spend=trait:spend:number,newsletter=consent:marketing,vip=tag:vip,note=skip';

describeOnPostgres('bulk import on %s', (mode) => {
  let db: TestDatabase;
  let cairn: Cairn;
  const file = generate(ROWS, 'u');
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${cairn.url}/api${path}`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_ADMIN_KEY}`, ...(init.headers ?? {}) },
    });
  // Sent as a stream in 64 KB pieces: the server parses while it receives.
  const streamOf = (text: string) => Readable.toWeb(Readable.from(chunks(text, 65_536))) as ReadableStream;
  const upload = async (path: string, text: string) => {
    const res = await call(path, {
      method: path.endsWith('/data') ? 'PUT' : 'POST',
      headers: { 'content-type': 'text/csv' },
      body: streamOf(text),
      duplex: 'half',
    } as RequestInit);
    const body = (await res.json()) as ImportJson;
    expect(res.status, JSON.stringify(body)).toBe(200);
    return body;
  };
  const counts = async () => {
    const [c] = await cairn.sql<Record<string, string>[]>`
      SELECT (SELECT count(*) FROM profiles) AS profiles,
        (SELECT count(*) FROM identities) AS identities,
        (SELECT count(*) FROM profile_traits) AS traits,
        (SELECT count(*) FROM events) AS events,
        (SELECT count(*) FROM consent_changes) AS consent,
        (SELECT count(*) FROM tag_assignments) AS tags`;
    return c!;
  };
  const errorsOf = async (id: string) => {
    const all: { line: number; reason: string }[] = [];
    let after = 0;
    for (;;) {
      const page = (await (await call(`/imports/${id}/errors?after=${after}&limit=400`)).json()) as {
        data: { line: number; reason: string }[];
        next: number | null;
      };
      all.push(...page.data);
      if (page.next === null) return all;
      after = page.next;
    }
  };

  beforeAll(async () => {
    db = await createTestDatabase('api/imports.test.ts', mode);
    // A 100k-row upload is one request: longer than the default 30 s request timeout on a busy machine.
    cairn = await startTestCairn({ ...db.env, CAIRN_REQUEST_TIMEOUT_MS: '600000' });
    const tag = await call('/tags', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ key: 'vip', name: 'VIP' }),
    });
    expect(tag.status, await tag.text()).toBe(201);
  }, 120_000);
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('imports 100k rows once and reports exactly the bad rows by line', async () => {
    const imp = await upload(`/imports?map=${encodeURIComponent(MAP)}&rows=${ROWS}`, file.text);
    expect(imp).toMatchObject({ status: 'done', rowsDone: ROWS, rowsBad: file.bad.size, rowsUnchanged: 0 });
    expect(imp.profilesCreated).toBe(ROWS - file.bad.size);
    const errors = await errorsOf(imp.id);
    expect(errors.map((e) => e.line)).toEqual([...file.bad.keys()].sort((a, b) => a - b));
    for (const e of errors) {
      const kind = file.bad.get(e.line)!;
      expect(e.reason).toContain(kind === 'duplicate' ? 'duplicate userId: same as line' : `column ${kind}`);
    }
    const c = await counts();
    expect(Number(c.profiles)).toBe(ROWS - file.bad.size);
    expect(Number(c.identities)).toBe(2 * (ROWS - file.bad.size));
    // One consent change per person (the first choice), VIP on every tenth good row.
    expect(Number(c.consent)).toBe(ROWS - file.bad.size);
    const vip = [...Array(ROWS).keys()].filter((i) => i % 10 === 0 && !file.bad.has(i + 2)).length;
    expect(Number(c.tags)).toBe(vip);
  }, 600_000);

  it('keeps traits and identities of a row together, PII sealed at rest', async () => {
    const [p] = await cairn.sql<{ id: string }[]>`SELECT profile_id AS id FROM identities WHERE key = 'userId:u7'`;
    const res = await call(`/profiles/${p!.id}`);
    const view = (await res.json()) as {
      traits: Record<string, { value: unknown }>;
      consent: Record<string, { granted: boolean }>;
    };
    expect(view.traits.name?.value).toBe('Doe, 7');
    expect(view.traits.birthday?.value).toBe('1957-08-17');
    expect(view.traits.spend?.value).toBe(7.5);
    expect(view.consent.marketing?.granted).toBe(true);
    const stored = await cairn.sql<{ value: unknown }[]>`
      SELECT value FROM profile_traits WHERE profile_id = ${p!.id} AND key = 'email'`;
    expect(isSealed(stored[0]!.value)).toBe(true);
    expect(cairn.pii.openValue(stored[0]!.value)).toBe('u7@example.com');
    const [leaks] = await cairn.sql<{ n: string }[]>`
      SELECT (SELECT count(*) FROM identities WHERE value LIKE '%@example.com')
        + (SELECT count(*) FROM events WHERE payload::text LIKE '%@example.com%')
        + (SELECT count(*) FROM profile_traits WHERE value::text LIKE '%@example.com%') AS n`;
    expect(Number(leaks!.n)).toBe(0);
    // Imported events are stage 2's own: processed, never handed on (no flow, no delivery).
    const [pending] = await cairn.sql<{ n: string }[]>`
      SELECT count(*) AS n FROM events WHERE source_id = 'import' AND processed_at IS NULL`;
    expect(Number(pending!.n)).toBe(0);
  });

  it('imports the same file again without changing anything', async () => {
    const before = await counts();
    const [traitsBefore] = await cairn.sql<{ m: Date }[]>`SELECT max(updated_at) AS m FROM profile_traits`;
    const imp = await upload(`/imports?map=${encodeURIComponent(MAP)}`, file.text);
    expect(imp).toMatchObject({ status: 'done', rowsBad: file.bad.size, profilesCreated: 0, profilesUpdated: 0 });
    expect(imp.rowsUnchanged).toBe(ROWS - file.bad.size);
    expect((await errorsOf(imp.id)).map((e) => e.line)).toEqual([...file.bad.keys()].sort((a, b) => a - b));
    expect(await counts()).toEqual(before);
    const [traitsAfter] = await cairn.sql<{ m: Date }[]>`SELECT max(updated_at) AS m FROM profile_traits`;
    expect(traitsAfter!.m).toEqual(traitsBefore!.m);
  }, 600_000);

  it('dry run: reports what would change, changes nothing', async () => {
    const before = await counts();
    // 3 changed names (rows 1-3), 2 new people, the rest unchanged.
    const text = file.text
      .split('\n')
      .slice(0, 1001)
      .map((l, n) => (n >= 2 && n <= 4 ? l.replace(`Person ${n - 1}`, `Renamed ${n - 1}`) : l))
      .concat([
        'new1,new1@example.com,New,1990-01-01,1,yes,true,x',
        'new2,new2@example.com,New,1990-01-01,1,no,false,x',
      ])
      .join('\n');
    const imp = await upload(`/imports?map=${encodeURIComponent(MAP)}&dryRun=true`, text);
    expect(imp).toMatchObject({ status: 'done', dryRun: true, profilesCreated: 2, profilesUpdated: 3 });
    expect(imp.rowsBad).toBe([...file.bad.keys()].filter((l) => l <= 1001).length);
    expect(await counts()).toEqual(before);
  }, 120_000);

  it('CRM upsert by identity: creates, updates, the same body twice changes nothing', async () => {
    const put = async (path: string, body: unknown) => {
      const res = await call(path, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const body = {
      traits: { name: 'Crm Ann', plan: 'pro' },
      identities: { email: 'crm-ann@example.com' },
      tags: ['vip'],
    };
    const first = await put('/profiles/by/userId/crm-ann', body);
    expect(first).toMatchObject({ status: 200, body: { created: true, changed: true } });
    const again = await put('/profiles/by/userId/crm-ann', body);
    expect(again).toMatchObject({
      status: 200,
      body: { profileId: first.body.profileId, created: false, changed: false },
    });
    // Found by the email alone, the trait updated on the same profile.
    const update = await put('/profiles/by/email/CRM-Ann@example.com', { traits: { plan: 'team' } });
    expect(update).toMatchObject({ status: 200, body: { profileId: first.body.profileId, changed: true } });
    const view = (await (await call(`/profiles/${first.body.profileId}`)).json()) as {
      traits: Record<string, { value: unknown }>;
    };
    expect(view.traits.plan?.value).toBe('team');
    expect(view.traits.name?.value).toBe('Crm Ann');
    // An email of another person with this userId: two profiles, refused.
    const clash = await put('/profiles/by/userId/crm-ann', { identities: { email: 'u8@example.com' } });
    expect(clash.status).toBe(409);
    expect((await put('/profiles/by/email/not-an-email', {})).status).toBe(400);
    // The audit log names the profile and the identity's type, never the address in the path.
    const audit = await cairn.sql<{ path: string; resourceId: string | null; row: string }[]>`
      SELECT path, resource_id AS "resourceId", to_jsonb(a)::text AS row
      FROM audit_log a WHERE action = 'profile.upsert' ORDER BY id`;
    expect(audit.map((a) => a.path)).toContain('/api/profiles/by/email/[identity]');
    expect(audit.find((a) => a.path.includes('/email/'))?.resourceId).toBe(first.body.profileId);
    expect(
      audit
        .map((a) => a.row)
        .join('\n')
        .toLowerCase(),
    ).not.toContain('crm-ann@example.com');
  });

  it('resumes a cut upload from its last committed line, without duplicates', async () => {
    const second = generate(20_000, 'r');
    const created = await call('/imports', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ format: 'csv', map: MAP, rows: 20_000 }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as ImportJson;
    // Half the file, then the connection breaks.
    const half = second.text.slice(0, second.text.length / 2);
    const broken = new ReadableStream({
      async start(controller) {
        for (const c of chunks(half, 65_536)) controller.enqueue(new TextEncoder().encode(c));
        await new Promise((r) => setTimeout(r, 2000));
        controller.error(new Error('cut'));
      },
    });
    await call(`/imports/${id}/data`, {
      method: 'PUT',
      headers: { 'content-type': 'text/csv' },
      body: broken,
      duplex: 'half',
    } as RequestInit).catch(() => undefined);
    const cut = await until(async () => {
      const s = (await (await call(`/imports/${id}`)).json()) as ImportJson;
      return s.status === 'interrupted' ? s : undefined;
    });
    expect(cut.lastLine).toBeGreaterThan(1);
    expect(cut.lastLine).toBeLessThan(20_002);
    const done = await upload(`/imports/${id}/data`, second.text);
    expect(done, JSON.stringify((await errorsOf(id)).slice(0, 3))).toMatchObject({
      status: 'done',
      rowsDone: 20_000,
      rowsBad: second.bad.size,
    });
    expect(done.profilesCreated).toBe(20_000 - second.bad.size);
    const [n] = await cairn.sql<{ n: string }[]>`SELECT count(*) AS n FROM identities WHERE key LIKE 'userId:r%'`;
    expect(Number(n!.n)).toBe(20_000 - second.bad.size);
    expect((await errorsOf(id)).map((e) => e.line)).toEqual([...second.bad.keys()].sort((a, b) => a - b));
  }, 300_000);
});

async function until<T>(f: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}
