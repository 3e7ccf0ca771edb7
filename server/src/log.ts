import { inspect } from 'node:util';
import pino from 'pino';

/** A leveled logger; the server writes one record per message to stderr. */
export interface Logger {
  info(message: string): void;
  debug(message: string): void;
  error(message: string, err?: unknown): void;
}

/** The logger a process starts with: a {@link Logger} whose children tag every line they write. */
export interface StructuredLogger extends Logger {
  /**
   * A logger whose lines carry `bindings` too (`[proc=pipeline]` in text, `"proc":"pipeline"` in JSON),
   * so processes or parts writing to one stream can be told apart.
   */
  child(bindings: Readonly<Record<string, string | number | boolean>>): StructuredLogger;
}

/** `silent` writes errors only. */
export type LogLevel = 'silent' | 'info' | 'debug';
/** `text`: one readable line per message (the default); `json`: pino's JSON lines, for log shippers. */
export type LogFormat = 'text' | 'json';

export interface LoggerOptions {
  format?: LogFormat;
  /** Where lines go; default stderr (fd 2), written synchronously. */
  destination?: { write(line: string): unknown };
}

const PINO_LEVEL = { silent: 'error', info: 'info', debug: 'debug' } as const;

/**
 * Creates a logger for a level and a format (pino underneath). Every line has an ISO-8601 UTC timestamp;
 * an Error is written with its stack (and causes), anything else inspected on one line.
 *
 * @example
 * const log = createLogger('info', { format: config.logFormat });
 * log.info('listening');            // 2026-12-06T18:00:00.123Z info  listening
 * log.child({ proc: 'pipeline' }).error('batch failed', err);
 */
export function createLogger(level: LogLevel, options: LoggerOptions = {}): StructuredLogger {
  const format = options.format ?? 'text';
  const sink = options.destination ?? stderr();
  return wrap(
    pino(
      {
        level: PINO_LEVEL[level],
        timestamp: pino.stdTimeFunctions.isoTime,
        // Level names, not pino's numbers: what a person or a log shipper's query expects to read.
        formatters: { level: (label) => ({ level: label }) },
        // pid and hostname help a shipper tell processes apart; a person reading a terminal knows them.
        ...(format === 'text' ? { base: null } : {}),
      },
      format === 'text' ? { write: (line: string) => sink.write(toText(line)) } : sink,
    ),
  );
}

function wrap(p: pino.Logger): StructuredLogger {
  return {
    info: (m) => p.info(m),
    debug: (m) => p.debug(m),
    error: (m, err) =>
      err === undefined ? p.error(m) : p.error({ err: err instanceof Error ? err : describe(err) }, m),
    child: (bindings) => wrap(p.child(bindings)),
  };
}

// Synchronous writes to fd 2: a line logged just before process.exit() (a failed start, a shutdown) is
// never lost in a buffer or a worker thread, as it would be with an async destination or a pino transport.
function stderr(): { write(line: string): unknown } {
  const dest = pino.destination({ fd: 2, sync: true });
  // A closed stderr (EPIPE: the supervisor reading it has gone) leaves nowhere to report to; an unhandled
  // 'error' event would take the process down for the sake of a log line.
  dest.on('error', () => {});
  return dest;
}

// Anything but an Error (pg-boss emits plain objects) inspected on one line, never `[object Object]`.
function describe(err: unknown): string {
  return typeof err === 'string' ? err : inspect(err, { depth: 4, breakLength: Number.POSITIVE_INFINITY });
}

interface PinoLine {
  level: string;
  time: string;
  msg: string;
  err?: string | { message?: string; stack?: string };
}

// `2026-12-06T18:00:00.123Z info  [proc=pipeline] message: Error: ...stack`. The message stays whole on
// the first line, so a grep for it (tests, operators) finds it; a stack follows on its own lines.
function toText(line: string): string {
  const { level, time, msg, err, ...bindings } = JSON.parse(line) as PinoLine;
  const tags = Object.entries(bindings).map(([k, v]) =>
    typeof v === 'string' && /^\S+$/.test(v) ? `${k}=${v}` : `${k}=${JSON.stringify(v)}`,
  );
  const detail = err === undefined ? '' : `: ${typeof err === 'string' ? err : err.stack || err.message}`;
  return `${time} ${level.padEnd(5)} ${tags.length ? `[${tags.join(' ')}] ` : ''}${msg}${detail}\n`;
}
