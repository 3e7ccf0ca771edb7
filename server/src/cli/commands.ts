// The operator commands of `cairn` (cli.ts parses the command line, then imports this, so a usage error or
// `cairn start` loads none of it): each opens the database the server would use, does one thing and exits.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { rotateAdminKey } from '../auth/keys.ts';
import { type Config, ConfigError, loadConfig } from '../config.ts';
import { type Database, DataDirInUseError, openDatabase } from '../db/index.ts';
import { listMigrations } from '../db/migrate.ts';
import { BOSS_SCHEMA } from '../jobs/queues.ts';
import { createLogger } from '../log.ts';
import { listSources } from '../sources/queries.ts';
import { prepareDatabase } from './prepare.ts';
import { formatAge, formatTable, readStatus } from './status.ts';

const fail = (message: string): never => {
  process.stderr.write(`cairn: ${message}\n`);
  process.exit(1);
};

function serverConfig(): Readonly<Config> {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
}

/**
 * Opens the database the server would use. Unless `create`, only one that a server or `migrate` already
 * set up: a mistyped CAIRN_DATA_DIR or URL must not look like success (nor leave an empty database behind).
 */
async function openDb(config: Readonly<Config>, options: { create: boolean }): Promise<Database> {
  const noDatabase = `no Cairn database ${config.databaseUrl ? 'at DATABASE_URL' : `in ${config.dataDir}`}`;
  const hint = 'run `cairn migrate` or start the server once first';
  if (!options.create && !config.databaseUrl && !existsSync(join(resolve(config.dataDir), 'pgdata'))) {
    fail(`${noDatabase}: ${hint}`);
  }
  const log = createLogger(options.create ? config.log : 'silent', { format: config.logFormat });
  const db = await openDatabase(config, log).catch((err: unknown) =>
    fail(err instanceof DataDirInUseError ? err.message : `cannot open the database: ${(err as Error).message}`),
  );
  if (!options.create) {
    const [found] = await db.sql<{ settings: string | null }[]>`SELECT to_regclass('settings')::text AS settings`;
    if (!found?.settings) {
      await db.close();
      fail(`${noDatabase}: ${hint}`);
    }
  }
  return db;
}

async function withDb<T>(options: { create: boolean }, fn: (db: Database, config: Readonly<Config>) => Promise<T>) {
  const config = serverConfig();
  const db = await openDb(config, options);
  try {
    return await fn(db, config);
  } finally {
    await db.close();
  }
}

const out = (text: string) => process.stdout.write(text);

/** `migrations`: the SQL of every migration, in the order they are applied. */
export async function printMigrations(): Promise<void> {
  for (const m of await listMigrations()) {
    out(`-- migration ${String(m.version).padStart(4, '0')}: ${m.name}\n${m.sql.trimEnd()}\n\n`);
  }
}

/** `migrate`: everything a first start creates or upgrades, and nothing else. */
export async function migrateCommand(): Promise<void> {
  await withDb({ create: true }, async (db, config) => {
    const log = createLogger(config.log, { format: config.logFormat });
    const migrations = await listMigrations();
    const { applied, bossBefore, bossAfter } = await prepareDatabase(db, config, log);
    for (const m of migrations.filter((m) => applied.includes(m.version))) {
      out(`applied migration ${String(m.version).padStart(4, '0')} ${m.name}\n`);
    }
    if (!applied.length) out(`Cairn's ${migrations.length} migrations were already applied\n`);
    out(
      bossBefore === null
        ? `installed pg-boss's schema, version ${bossAfter}\n`
        : bossBefore === bossAfter
          ? `pg-boss's schema is up to date, version ${bossAfter}\n`
          : `upgraded pg-boss's schema from version ${bossBefore} to ${bossAfter}\n`,
    );
    out('the database is ready for this version of Cairn\n');
  });
}

/** `admin-key rotate`: the new key alone on stdout (for scripts), what to do next on stderr. */
export async function rotateAdminKeyCommand(): Promise<void> {
  await withDb({ create: false }, async (db) => {
    const key = await rotateAdminKey(db.sql);
    out(`${key}\n`);
    process.stderr.write(
      'cairn: this is the new admin API key, shown once: store it now. The old one stops working, and the new one ' +
        'starts working, on each server when it (re)starts. CAIRN_ADMIN_API_KEY, when set, stays accepted too.\n',
    );
  });
}

export async function sourcesCommand(json: boolean): Promise<void> {
  await withDb({ create: false }, async (db) => {
    // Write keys are public (they are in web pages), but a prefix is enough to tell them apart.
    const rows = (await listSources(db.sql)).map((s) => ({
      id: s.id,
      name: s.name,
      writeKeyPrefix: `${s.writeKey.slice(0, 10)}…`,
      enabled: s.enabled,
      createdAt: s.createdAt.toISOString(),
    }));
    if (json) return out(`${JSON.stringify(rows, null, 2)}\n`);
    if (!rows.length) return out('no sources yet (POST /api/sources creates one)\n');
    out(
      formatTable(
        rows.map((r) => ({
          id: r.id,
          name: r.name,
          'write key': r.writeKeyPrefix,
          enabled: r.enabled ? 'yes' : 'no',
          created: r.createdAt.replace(/\.\d+Z$/, 'Z'),
        })),
      ),
    );
  });
}

export async function statusCommand(json: boolean): Promise<void> {
  await withDb({ create: false }, async (db) => {
    const [found] = await db.sql<{ job: string | null }[]>`SELECT to_regclass(${`${BOSS_SCHEMA}.job`})::text AS job`;
    if (!found?.job) fail("pg-boss's schema is missing: run `cairn migrate` or start the server once first");
    const status = await readStatus(db.sql);
    if (json) return out(`${JSON.stringify(status, null, 2)}\n`);
    out(
      formatTable(
        status.queues.map((q) => ({
          queue: q.queue,
          stage: q.stage,
          ready: q.ready,
          later: q.later,
          active: q.active,
          'oldest waiting': formatAge(q.oldestSeconds),
        })),
      ),
    );
    if (!status.deliveries.length) return out('\nno unfinished deliveries\n');
    out('\nunfinished deliveries per destination:\n');
    out(
      formatTable(
        status.deliveries.map((d) => ({
          destination: d.name,
          id: d.destinationId,
          pending: d.pending,
          waiting: d.waiting,
          retrying: d.retrying,
          oldest: formatAge(d.oldestSeconds),
        })),
      ),
    );
  });
}
