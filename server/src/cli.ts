import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { rotateAdminKey } from './auth/keys.ts';
import { ConfigError, loadConfig } from './config.ts';
import { DataDirInUseError, openDatabase } from './db/index.ts';
import { listMigrations } from './db/migrate.ts';
import { createLogger } from './log.ts';

// `npm run cairn -- <command>`: operator commands that need no running server.
const USAGE = `usage: npm run cairn -- <command>
  migrations         print the SQL migrations in the order the server applies them
  admin-key rotate   replace the stored admin API key (a lost or leaked one) and print the new one;
                     uses DATABASE_URL or CAIRN_DATA_DIR like the server (stop an embedded server first)
`;

const fail = (message: string): never => {
  process.stderr.write(`cairn: ${message}\n`);
  process.exit(1);
};

/** `admin-key rotate`: the new key alone on stdout (for scripts), what to do next on stderr. */
async function rotateAdminKeyCommand(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  // Never create a database here: a mistyped CAIRN_DATA_DIR or URL must not look like success.
  const noDatabase = `no Cairn database ${config.databaseUrl ? 'at DATABASE_URL' : `in ${config.dataDir}`}`;
  if (!config.databaseUrl && !existsSync(join(resolve(config.dataDir), 'pgdata'))) {
    fail(`${noDatabase}: start the server once first`);
  }
  const db = await openDatabase(config, createLogger('silent', { format: config.logFormat })).catch((err: unknown) =>
    fail(err instanceof DataDirInUseError ? err.message : `cannot open the database: ${(err as Error).message}`),
  );
  try {
    const [found] = await db.sql<{ settings: string | null }[]>`SELECT to_regclass('settings')::text AS settings`;
    if (!found?.settings) fail(`${noDatabase}: start the server once first`);
    const key = await rotateAdminKey(db.sql);
    process.stdout.write(`${key}\n`);
    process.stderr.write(
      'cairn: this is the new admin API key, shown once: store it now. The old one stops working, and the new one ' +
        'starts working, on each server when it (re)starts. CAIRN_ADMIN_API_KEY, when set, stays accepted too.\n',
    );
  } finally {
    await db.close();
  }
}

const [command, sub] = process.argv.slice(2);
if (command === 'migrations') {
  for (const m of await listMigrations()) {
    process.stdout.write(`-- migration ${String(m.version).padStart(4, '0')}: ${m.name}\n${m.sql.trimEnd()}\n\n`);
  }
} else if (command === 'admin-key' && sub === 'rotate') {
  await rotateAdminKeyCommand();
} else {
  process.stderr.write(USAGE);
  process.exit(command ? 2 : 0);
}
