import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import type { Cairn } from './server.ts';
import {
  createTestDatabase,
  POSTGRES_SKIP_REASON,
  startTestCairn,
  TEST_ADMIN_KEY,
  type TestDatabase,
} from './testing/index.ts';

// biome-ignore lint/suspicious/noExplicitAny: responses are checked by the assertions
type Any = any;

describe('CAIRN_DEMO', () => {
  it('defaults to on for the embedded database and off on Postgres; set, it wins', () => {
    const pg = 'postgres://u@db.internal:5432/cairn';
    expect(loadConfig({}).demo).toBe(true);
    expect(loadConfig({ DATABASE_URL: '' }).demo).toBe(true);
    expect(loadConfig({ DATABASE_URL: pg }).demo).toBe(false);
    expect(loadConfig({ DATABASE_URL: pg, CAIRN_DEMO: '' }).demo).toBe(false);
    expect(loadConfig({ DATABASE_URL: pg, CAIRN_DEMO: '1' }).demo).toBe(true);
    expect(loadConfig({ CAIRN_DEMO: 'no' }).demo).toBe(false);
    expect(() => loadConfig({ CAIRN_DEMO: 'maybe' })).toThrow(/CAIRN_DEMO/);
  });
});

describe.each(['postgres', 'embedded'] as const)('the demo source on a fresh %s database', (mode) => {
  const skip = mode === 'postgres' && POSTGRES_SKIP_REASON !== null;
  if (skip) it.skip(`postgres: ${POSTGRES_SKIP_REASON}`, () => {});
  if (skip) return;

  const started: { cairn: Cairn; db: TestDatabase }[] = [];
  afterAll(async () => {
    for (const { cairn, db } of started) {
      await cairn.close();
      await db.drop();
    }
  });
  const start = async (name: string, demo: string) => {
    const db = await createTestDatabase(`demo.test.ts:${mode}:${name}`, mode);
    // The testing helper turns the demo on; '' gives the production default.
    const cairn = await startTestCairn({ ...db.env, CAIRN_DEMO: demo });
    started.push({ cairn, db });
    const res = await fetch(`${cairn.url}/api/sources`, { headers: { authorization: `Bearer ${TEST_ADMIN_KEY}` } });
    expect(res.status).toBe(200);
    const ids = ((await res.json()) as Any).data.map((s: Any) => s.id);
    const shop = await fetch(`${cairn.url}/demo/`);
    return { cairn, ids, shop: shop.status };
  };

  it(mode === 'postgres' ? 'is not created unless asked' : 'is created by default', async () => {
    const { cairn, ids, shop } = await start('default', '');
    if (mode === 'postgres') {
      expect(cairn.demoSource).toBeUndefined();
      expect(ids).not.toContain('src_demo');
      expect(shop).toBe(404);
    } else {
      expect(cairn.demoSource?.id).toBe('src_demo');
      expect(ids).toContain('src_demo');
    }
  });

  it('is created when asked (CAIRN_DEMO=1)', async () => {
    const { cairn, ids } = await start('asked', '1');
    expect(cairn.demoSource?.writeKey).toMatch(/^wk_/);
    expect(ids).toContain('src_demo');
  });
});
