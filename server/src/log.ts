import { inspect } from 'node:util';

/** A minimal leveled logger; the server writes one line per message to stderr. */
export interface Logger {
  info(message: string): void;
  debug(message: string): void;
  error(message: string, err?: unknown): void;
}

/**
 * Creates a logger for a level (`silent` prints errors only).
 *
 * @example
 * const log = createLogger('info');
 */
export function createLogger(level: 'silent' | 'info' | 'debug'): Logger {
  const write = (tag: string, message: string) => process.stderr.write(`[cairn] ${tag}${message}\n`);
  return {
    info: (m) => level !== 'silent' && write('', m),
    debug: (m) => level === 'debug' && write('debug: ', m),
    error: (m, err) => write('error: ', err ? `${m}: ${describe(err)}` : m),
  };
}

// An Error with its stack; anything else (pg-boss emits plain objects) inspected on one line, never
// `[object Object]`.
function describe(err: unknown): string {
  if (err instanceof Error) return err.stack ?? err.message;
  return typeof err === 'string' ? err : inspect(err, { depth: 4, breakLength: Number.POSITIVE_INFINITY });
}
