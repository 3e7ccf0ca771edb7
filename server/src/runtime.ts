import type { PgBoss } from 'pg-boss';
import type { Config } from './config.ts';
import type { Sql } from './db/index.ts';
import type { HandOff } from './jobs/handoff.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './observability/metrics.ts';
import type { Pii } from './pii/index.ts';
import type { PluginRegistry } from './pipeline/deliver/plugins.ts';

/**
 * What every stage and route is built from: made once by `startCairn` (server.ts), before any stage,
 * and never changed afterwards. A stage keeps its own state inside the object its factory returns (no
 * module-level state), and takes from here only what it uses; nothing here is a bag for one stage's
 * needs (a stage derives its settings from `config`).
 */
export interface Runtime {
  readonly config: Readonly<Config>;
  /** `embedded`: one PGlite session, so one worker of each kind. */
  readonly dbKind: 'postgres' | 'embedded';
  readonly sql: Sql;
  readonly boss: PgBoss;
  /** The one way stages hand work to each other (jobs/handoff.ts). */
  readonly handOff: HandOff;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** PII at rest: sealing, opening, blind indexes. */
  readonly pii: Pii;
  /** The server secret (signed links, suppression hashes). */
  readonly secret: string;
  /** The clock rules, windows and waits are evaluated against (tests move it). */
  readonly clock: () => Date;
  /** The installed destination plugins (built-ins, CAIRN_PLUGINS, injected in tests). */
  readonly plugins: PluginRegistry;
  /** This server's address as links in messages name it (CAIRN_PUBLIC_URL, else the listening address). */
  readonly publicUrl: string;
  /** Aborted when shutdown begins: in-flight plugin calls stop and their items are retried. */
  readonly stopping: AbortSignal;
}

/** What every stage's factory returns: started after the HTTP server listens, stopped in reverse order. */
export interface Stage {
  start(): Promise<void>;
  stop(): Promise<void>;
}
