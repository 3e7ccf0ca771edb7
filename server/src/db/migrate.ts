import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sql } from './index.ts';

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
// Any constant works; it only has to be the same for every Cairn process on one database.
const MIGRATION_LOCK = 727_746_001;

/** One numbered migration file. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Reads the numbered `.sql` files in order (`0001_init.sql`, ...).
 *
 * @example
 * for (const m of await listMigrations()) console.log(m.version, m.name);
 */
export async function listMigrations(): Promise<Migration[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number.parseInt(file.slice(0, 4), 10),
      name: file.slice(5, -4),
      sql: await readFile(join(MIGRATIONS_DIR, file), 'utf8'),
    })),
  );
}

/**
 * Applies pending migrations in one transaction under an advisory lock, so servers starting together
 * on an empty database apply each migration exactly once: the others wait, then find nothing to do.
 * Returns the versions this call applied.
 *
 * @example
 * const applied = await migrate(sql);
 */
export async function migrate(sql: Sql): Promise<number[]> {
  const migrations = await listMigrations();
  return sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`
      CREATE TABLE IF NOT EXISTS cairn_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`;
    const done = new Set((await tx<{ version: number }[]>`SELECT version FROM cairn_migrations`).map((r) => r.version));
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      // A migration file is trusted SQL from this repository, with several statements: unsafe by design.
      await tx.unsafe(m.sql);
      await tx`INSERT INTO cairn_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      applied.push(m.version);
    }
    return applied;
  });
}
