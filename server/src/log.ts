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
    error: (m, err) =>
      write('error: ', err ? `${m}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}` : m),
  };
}
