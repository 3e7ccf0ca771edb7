import { setupPeople } from '../auth/people.ts';
import type { Config } from '../config.ts';
import { type Database, type Sql, withStartupLock } from '../db/index.ts';
import { migrate } from '../db/migrate.ts';
import { BOSS_SCHEMA, startBoss } from '../jobs/queues.ts';
import type { Logger } from '../log.ts';
import { resolveSecret } from '../secret.ts';
import { upgradeQueues } from '../upgrade/queues.ts';

/** What `cairn migrate` did: the Cairn migrations it applied now, and pg-boss's schema version before and after. */
export interface PreparedDatabase {
  applied: number[];
  bossBefore: number | null;
  bossAfter: number | null;
}

/**
 * Creates or upgrades everything a server creates on its start, in the same order and under the same
 * locks (server.ts `startOn`): Cairn's numbered migrations (their own advisory lock), then better-auth's
 * tables, pg-boss's schema and queues and the queue upgrades (the startup lock). A server started
 * afterwards finds nothing to do, so upgrades run once, before a rolling restart. Starts no worker, sends
 * no job, creates no admin key.
 *
 * @example
 * const { applied } = await prepareDatabase(db, config, log);
 */
export async function prepareDatabase(db: Database, config: Readonly<Config>, log: Logger): Promise<PreparedDatabase> {
  const { sql } = db;
  const applied = await migrate(sql);
  // better-auth signs with the secret; the first start stores a generated one (secret.ts), so this does too.
  const secret = await resolveSecret(sql, config);
  const bossBefore = await bossVersion(sql);
  await withStartupLock(db, async () => {
    await setupPeople(sql, config, secret);
    // No supervision and no schedules: this process does no work, it only installs pg-boss and its queues.
    const boss = await startBoss(db, log, { supervise: false });
    try {
      await upgradeQueues(boss, sql, log, config.delivery);
    } finally {
      // The pool is ours (db.close), not pg-boss's.
      await boss.stop({ graceful: false, close: false });
    }
  });
  return { applied, bossBefore, bossAfter: await bossVersion(sql) };
}

/** pg-boss's schema version, or null when it is not installed. */
async function bossVersion(sql: Sql): Promise<number | null> {
  const [found] = await sql<{ t: string | null }[]>`SELECT to_regclass(${`${BOSS_SCHEMA}.version`})::text AS t`;
  if (!found?.t) return null;
  const [row] = await sql<{ version: number }[]>`SELECT version FROM ${sql(BOSS_SCHEMA)}.version`;
  return row?.version ?? null;
}
