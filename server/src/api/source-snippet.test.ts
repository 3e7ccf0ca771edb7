import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import {
  adminApi,
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from '../testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

describe('GET /api/sources/{id}/snippet (postgres)', () => {
  if (POSTGRES_SKIP_REASON) it.skip(`needs Postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (POSTGRES_SKIP_REASON) return;

  let db: TestDatabase;
  let cairn: Cairn;
  beforeAll(async () => {
    db = await createTestDatabase('server/src/api/source-snippet.test.ts', 'postgres');
    cairn = await startTestCairn(db.env);
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it("answers GET /sdk/snippet's tag with the source's write key in it", async () => {
    const api = adminApi(cairn.url, TEST_ADMIN_KEY);
    const created = await api('/sources', { method: 'POST', body: JSON.stringify({ name: 'Shop' }) });
    expect(created.status).toBe(201);
    const res = await fetch(`${cairn.url}/sdk/snippet`);
    const mine = await api(`/sources/${created.body.id}/snippet`);
    if (res.status === 404) {
      // The snippet is not built here: both say so, with the command that builds it.
      expect(mine.status).toBe(404);
      expect(mine.body.error.message).toContain('npm run build -w @cairn/sdk-web');
      return;
    }
    const general = (await res.json()) as Any;
    expect(mine.status).toBe(200);
    expect(mine.body).toEqual({
      sourceId: created.body.id,
      version: general.version,
      src: general.src,
      integrity: general.integrity,
      tag: general.tag.replace('YOUR_WRITE_KEY', created.body.writeKey),
    });
    expect(mine.body.tag).toContain(`data-write-key="${created.body.writeKey}"`);
  });

  it('answers 404 for an unknown source and 409 for the internal one', async () => {
    const api = adminApi(cairn.url, TEST_ADMIN_KEY);
    expect((await api('/sources/no-such-source/snippet')).status).toBe(404);
    expect((await api('/sources/cairn/snippet')).status).toBe(409);
  });

  it('refuses to enable, rename or rotate the internal sources (unsubscribes, bulk imports)', async () => {
    const api = adminApi(cairn.url, TEST_ADMIN_KEY);
    for (const id of ['cairn', 'import']) {
      const listed = async () => (await api('/sources')).body.data.find((s: Any) => s.id === id);
      const before = await listed();
      expect(before.enabled).toBe(false);
      const enable = await api(`/sources/${id}`, { method: 'PATCH', body: JSON.stringify({ enabled: true }) });
      expect(enable.status).toBe(409);
      expect(enable.body.error.code).toBe('internal_source');
      const rotate = await api(`/sources/${id}/rotate-key`, { method: 'POST', body: '{}' });
      expect(rotate.status).toBe(409);
      expect(await listed()).toEqual(before);
    }
  });

  it('is described in OpenAPI with sources:read, which analysts lack', async () => {
    const doc = (await (await fetch(`${cairn.url}/api/openapi.json`)).json()) as Any;
    expect(doc.paths['/api/sources/{id}/snippet'].get['x-cairn-permission']).toBe('sources:read');
    const api = adminApi(cairn.url, TEST_ADMIN_KEY);
    const key = await api('/keys', { method: 'POST', body: JSON.stringify({ name: 'reader', role: 'analyst' }) });
    expect(key.status).toBe(201);
    expect((await adminApi(cairn.url, key.body.key)('/sources/src_demo/snippet')).status).toBe(403);
  });
});
