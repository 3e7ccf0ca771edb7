import { getPriority, setPriority } from 'node:os';
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { createYieldGate, REST_FACTOR } from './pipeline/yield.ts';
import { startCairn } from './server.ts';
import type { PipelineMessage } from './supervisor.ts';

// The pipeline's own process in the all-in-one start: main.ts forks it (supervisor.ts) and serves the
// APIs itself. It is a worker node (CAIRN_ROLE=worker) on the same database, reachable only through
// its parent: it listens on a loopback port nobody is told about, answers metrics over IPC, and exits
// when its parent is gone (a node killed whole must not leave its pipeline running on).
if (!process.send) {
  process.stderr.write('cairn: pipeline-process is started by the server (npm start), not by hand\n');
  process.exit(2);
}
const send = (m: PipelineMessage) => process.send?.(m);

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig({ ...process.env, CAIRN_ROLE: 'worker', PORT: '0', HOST: '127.0.0.1' });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
}
// Lower priority than the API process: when both want the CPU, the tracking API answers first and
// the pipeline's backlog waits (it is durable in the queues).
try {
  setPriority(Math.min(19, getPriority() + config.pipeline.niceness));
} catch {
  // Not allowed (some containers): run at the same priority.
}
// One stream with the parent's lines: this process's carry proc=pipeline.
const log = createLogger(config.log, { format: config.logFormat }).child({ proc: 'pipeline' });
process.on('disconnect', () => {
  log.error('the server process is gone: the pipeline process exits (its jobs are retried by the next one)');
  process.exit(1);
});

// The API process asks this one to hold back while its group commits are slow (pipeline/yield.ts).
const gate = createYieldGate({ restFactor: REST_FACTOR });
process.on('message', (m: PipelineMessage) => {
  if (m.type === 'yield') gate.yieldFor(m.ms);
});

const cairn = await startCairn(config, log, { beforeWork: () => gate.pass() }).catch((err: unknown) => {
  // The supervisor restarts it (with a backoff): one line on why, then out.
  log.error('the pipeline process could not start', err);
  process.exit(1);
});
process.on('message', (m: PipelineMessage) => {
  if (m.type !== 'metrics?') return;
  cairn.metrics.registry.getMetricsAsJSON().then(
    (metrics) => send({ type: 'metrics', id: m.id, metrics }),
    (err) => log.error('collecting metrics', err),
  );
});
send({ type: 'ready', pid: process.pid });

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    cairn.close().then(
      () => process.exit(0),
      (err) => {
        log.error('pipeline shutdown failed', err);
        process.exit(1);
      },
    );
  });
}
