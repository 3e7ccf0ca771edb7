import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signUpOpen } from './auth/people.ts';
import { ConfigError, DEFAULTS, loadConfig } from './config.ts';
import { DataDirInUseError } from './db/index.ts';
import { loadConsole } from './http/console.ts';
import { loadSnippet, snippetTag } from './http/sdk.ts';
import { createLogger } from './log.ts';
import { PluginLoadError } from './pipeline/deliver/index.ts';
import { watchCommits, YIELD_MS } from './pipeline/yield.ts';
import { startCairn } from './server.ts';
import { supervise } from './supervisor.ts';

// Entry point of `npm start`: parse the configuration once, start, print how to use it, and shut
// down cleanly on SIGTERM/SIGINT (stop accepting, flush in-flight group commits, exit 0).
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
const log = createLogger(config.log, { format: config.logFormat });
// The all-in-one start on Postgres: this process serves the APIs (an ingest node) and supervises the
// pipeline in a process of its own (pipeline-process.ts). The embedded database belongs to one process,
// so there everything stays inline.
const ownProcess = config.role === 'all' && config.databaseUrl !== undefined && config.pipeline.mode === 'process';
const cairn = await startCairn(ownProcess ? Object.freeze({ ...config, role: 'ingest' as const }) : config, log).catch(
  (err: unknown) => {
    // A second `npm start` on the same data directory, or a plugin that cannot be loaded: one line, not a
    // stack trace.
    if (!(err instanceof DataDirInUseError) && !(err instanceof PluginLoadError)) throw err;
    process.stderr.write(`cairn: ${err.message}\n`);
    process.exit(1);
  },
);

// Where it really listens: on every interface (HOST=0.0.0.0 or ::, the default) the URL printed is the local one.
const everywhere = config.host === '0.0.0.0' || config.host === '::';
log.info(
  `Cairn is listening on ${cairn.url} (${everywhere ? `every interface, HOST=${config.host}, port ${cairn.port}` : `HOST=${config.host} only`}; role: ${config.role})`,
);
if (config.role !== 'worker') {
  log.info(`tracking endpoint: ${cairn.url}/v1/batch   admin API: ${cairn.url}/api (reference: ${cairn.url}/api/docs)`);
  log.info(
    loadConsole()
      ? `console: ${cairn.url}/console/ (sign in with a person account)`
      : 'the console is not built (npm run build -w @cairn/console): /console/ answers 503',
  );
  const snippet = loadSnippet();
  log.info(
    snippet
      ? `snippet for websites (also at ${cairn.url}/sdk/snippet): ${snippetTag(snippet, config.publicUrl ?? cairn.url).tag}`
      : 'the browser snippet is not built (npm run build -w @cairn/sdk-web): /sdk/* answers 404',
  );
  if (cairn.generatedAdminKey) {
    log.info(`generated admin API key (shown once, store it now): ${cairn.generatedAdminKey}`);
  }
  if (config.openFirstSignUp && (await signUpOpen(cairn.sql))) {
    log.info(
      `no people yet: the first sign-up (at ${cairn.url}/console/, or POST ${cairn.url}/api/auth/sign-up/email) becomes admin`,
    );
  }
  if (cairn.demoSource) {
    log.info(`demo source write key: ${cairn.demoSource.writeKey}   demo shop: ${cairn.url}/demo/`);
  }
}

const pipeline = ownProcess
  ? supervise({
      entry: fileURLToPath(new URL(`./pipeline-process${extname(fileURLToPath(import.meta.url))}`, import.meta.url)),
      env: process.env,
      log,
      name: 'pipeline',
    })
  : undefined;
if (pipeline) {
  cairn.metrics.attach(pipeline.metrics);
  // The tracking API first: while its group commits are slow, the pipeline's next batches wait.
  const after = config.pipeline.yieldAfterMs;
  if (after !== undefined) watchCommits(cairn.metrics.commitDuration, after, () => pipeline.yieldFor(YIELD_MS));
  log.info(
    `the pipeline runs in a process of its own, niceness +${config.pipeline.niceness} (CAIRN_PIPELINE=inline: in this one)`,
  );
}

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: finishing in-flight requests and stopping`);
    // Both drain at once: the API stops accepting and commits what it took; the pipeline finishes or
    // returns its jobs (they are durable in the queues).
    Promise.all([cairn.close(), pipeline?.stop(DEFAULTS.shutdownTimeoutMs)]).then(
      () => process.exit(0),
      (err) => {
        log.error('shutdown failed', err);
        process.exit(1);
      },
    );
  });
}
