import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';

/** Where a test's Cairn keeps its data: a database of its own on the real Postgres, or a PGlite directory. */
export type DbMode = 'postgres' | 'embedded';

/** A database made for one test file. */
export interface TestDatabase {
  mode: DbMode;
  /** Environment for a Cairn server using it (DATABASE_URL or CAIRN_DATA_DIR). */
  env: Record<string, string>;
  /** A direct client to inspect it (postgres mode only; embedded data is read through the server). */
  url: string | undefined;
  drop(): Promise<void>;
}

/**
 * The modes a test suite should run in: `postgres` needs DATABASE_URL (CI sets it); `embedded`
 * always runs. Missing Postgres is never a silent pass: the caller skips loudly with this reason.
 *
 * @example
 * describe.each(testModes())('ingest on %s', (mode) => { ... });
 */
export function testModes(): DbMode[] {
  return process.env.DATABASE_URL ? ['postgres', 'embedded'] : ['embedded'];
}

/** Why postgres-mode tests are skipped, or null when they run. */
export const POSTGRES_SKIP_REASON = process.env.DATABASE_URL
  ? null
  : 'DATABASE_URL is not set: Postgres-mode tests are skipped (CI sets it)';

/**
 * Creates an empty database named from a hash of `name`, so parallel test files never share one.
 * In postgres mode a failing connection throws: a test never passes because Postgres is missing.
 *
 * @example
 * const db = await createTestDatabase('ingest.test.ts', 'postgres');
 * await db.drop();
 */
export async function createTestDatabase(name: string, mode: DbMode): Promise<TestDatabase> {
  if (mode === 'embedded') {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-test-'));
    return {
      mode,
      env: { CAIRN_DATA_DIR: dir },
      url: undefined,
      drop: () => rm(dir, { recursive: true, force: true }),
    };
  }
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error('postgres mode needs DATABASE_URL');
  // The base database's name goes into the hash too: two runs against different bases (CI's and a
  // developer's, on one server) never drop each other's databases.
  const dbName = `cairn_t_${createHash('sha1')
    .update(`${new URL(base).pathname}:${name}`)
    .digest('hex')
    .slice(0, 12)}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.unsafe(`CREATE DATABASE ${dbName}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${dbName}`;
  return {
    mode,
    env: { DATABASE_URL: url.toString() },
    url: url.toString(),
    async drop() {
      const a = postgres(base, { max: 1, onnotice: () => {} });
      try {
        // Database names come from a hex hash above; DDL cannot take parameters.
        await a.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}
