import { statfsSync } from 'node:fs';
import postgres from 'postgres';

// The benchmark's own database, kept between runs (generating 10 M events takes minutes): made when
// missing, dropped and made again with --fresh. Nothing else on the server is touched.

/** The database of bench:analytics: its name, URL and the environment a Cairn server is started with. */
export interface BenchDatabase {
  name: string;
  url: string;
  env: Record<string, string>;
  /** True when it was created by this run (empty, not migrated). */
  created: boolean;
}

/**
 * Connects to `base` (any database of the server), creates `name` when missing (dropping it first when
 * `fresh`), and returns its URL.
 *
 * @example
 * const db = await openDatabase('postgres://postgres@127.0.0.1:5432/postgres', 'cairn_bench_analytics', false);
 */
export async function openDatabase(base: string, name: string, fresh: boolean): Promise<BenchDatabase> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`--database: ${name} is not a plain lower-case name`);
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  let created = false;
  try {
    // The name is checked above; DDL cannot take parameters.
    if (fresh) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    const [row] = await admin<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_database WHERE datname = ${name}`;
    if (!row?.n) {
      await admin.unsafe(`CREATE DATABASE ${name}`);
      created = true;
    }
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return { name, url: url.toString(), env: { DATABASE_URL: url.toString() }, created };
}

/**
 * Free bytes where Postgres keeps its data (the data directory when this process can see it, else the
 * filesystem of the working directory).
 *
 * @example
 * const free = await freeBytes(sql);
 */
export async function freeBytes(sql: postgres.Sql): Promise<{ path: string; bytes: number }> {
  let path = process.cwd();
  try {
    const [row] = await sql<{ dir: string }[]>`SELECT current_setting('data_directory') AS dir`;
    if (row?.dir) {
      statfsSync(row.dir);
      path = row.dir;
    }
  } catch {
    // not allowed to read the setting, or not on this machine: the working directory's filesystem
  }
  const s = statfsSync(path);
  return { path, bytes: s.bavail * s.bsize };
}
