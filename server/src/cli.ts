#!/usr/bin/env node
import { parseArgs } from 'node:util';

// `cairn <command>` (the server package's bin, compiled to dist/cli.js by `npm run build`) and
// `npm run cairn -- <command>` (the same file run from source by tsx): start the server, and the operator
// commands that need no running server.
const USAGE = `usage: cairn <command>      (in a checkout: npm run cairn -- <command>)
  start [--role=all|ingest|worker]  start the server, as npm start does; --role sets CAIRN_ROLE
  migrate                           create or upgrade the database (Cairn's migrations, pg-boss's schema and
                                    queues, the sign-in tables) under the servers' own locks, print what it
                                    applied and exit: run it once before a rolling restart
  migrations                        print the SQL migrations in the order they are applied
  admin-key rotate                  create or replace the stored admin API key (a lost or leaked one), print it
  sources [--json]                  list the sources: id, name, write key prefix, created
  status [--json]                   each queue's jobs (ready, later, active) and the age of its oldest waiting
                                    job, and each destination's unfinished deliveries
  import <file> --map <col=target,...> [--dry-run]
                                    bulk import of profiles from CSV or NDJSON through a running server's API,
                                    with a progress line (cairn import --help; docs/import.md);
                                    --kind events: historical Segment events (no flows, no deliveries)
Commands read the server's configuration from the environment: DATABASE_URL, or CAIRN_DATA_DIR for the
embedded database (one process at a time: stop an embedded server first).
`;

const ROLES = ['all', 'ingest', 'worker'] as const;
const COMMANDS = ['start', 'migrate', 'migrations', 'admin-key', 'sources', 'status'] as const;

// Asked for (no command, --help): exit 0; a mistake: exit 2 with what was wrong.
const usage = (message?: string): never => {
  if (message) process.stderr.write(`cairn: ${message}\n`);
  (message ? process.stderr : process.stdout).write(USAGE);
  process.exit(message ? 2 : 0);
};

// `cairn import` talks to a running server's API and parses its own options (cli/import.ts).
if (process.argv[2] === 'import') {
  const { importCommand } = await import('./cli/import.ts');
  process.exit(await importCommand(process.argv.slice(3)));
}

const args = (() => {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      options: { role: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
})();
const [command = '', sub, ...extra] = args.positionals;
const { role, json, help } = args.values;
if (help || !command) usage();
if (!(COMMANDS as readonly string[]).includes(command)) usage(`unknown command: ${command}`);
// Each flag and argument belongs to some commands only; anything else is a mistake worth saying, before any
// database is opened.
if (role !== undefined && command !== 'start') usage('--role is an option of start only');
if (role !== undefined && !(ROLES as readonly string[]).includes(role)) {
  usage(`--role must be one of ${ROLES.join(', ')}`);
}
if (json !== undefined && command !== 'sources' && command !== 'status') {
  usage('--json is an option of sources and status only');
}
const expectsSub = command === 'admin-key';
if (extra.length || (sub !== undefined && !expectsSub)) usage(`unexpected argument: ${expectsSub ? extra[0] : sub}`);
// Rotating cuts off whoever holds the old key: never without being asked by name.
if (expectsSub && sub !== 'rotate') {
  usage(sub ? `unknown admin-key command: ${sub}` : 'admin-key needs a command: rotate');
}

if (command === 'start') {
  // What `npm start` runs (main.ts reads CAIRN_ROLE with the rest of the configuration).
  if (role !== undefined) process.env.CAIRN_ROLE = role;
  await import('./main.ts');
} else {
  const ops = await import('./cli/commands.ts');
  const commands: Record<Exclude<(typeof COMMANDS)[number], 'start'>, () => Promise<void>> = {
    migrate: ops.migrateCommand,
    migrations: ops.printMigrations,
    'admin-key': ops.rotateAdminKeyCommand,
    sources: () => ops.sourcesCommand(json === true),
    status: () => ops.statusCommand(json === true),
  };
  await commands[command as keyof typeof commands]();
}
