import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createLogger, type LogFormat, type LogLevel } from './log.ts';

// A real sink kept in memory: every line the logger writes, as written.
function capture(level: LogLevel, format?: LogFormat) {
  const lines: string[] = [];
  const log = createLogger(level, { format, destination: { write: (line: string) => lines.push(line) } });
  return { log, lines };
}

const TIME = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;

describe('createLogger, text (the default)', () => {
  it('writes a timestamp, the level and the message whole on one line', () => {
    const { log, lines } = capture('info');
    log.info('Cairn is listening on http://127.0.0.1:8787 (role: all) 100%s');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^${TIME} info  Cairn is listening on http://127.0.0.1:8787 \\(role: all\\) 100%s\\n$`),
    );
    // The timestamp is now, not a constant.
    expect(Math.abs(Date.parse(lines[0]!.slice(0, 24)) - Date.now())).toBeLessThan(60_000);
  });

  it('writes a plain object error (as pg-boss emits) readably, on one line, never [object Object]', () => {
    const { log, lines } = capture('silent');
    log.error('pg-boss', { message: 'queue cache failed', code: '57P01', detail: { queue: 'fanout' } });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('[object Object]');
    expect(lines[0]).toMatch(new RegExp(`^${TIME} error pg-boss: \\{ message: 'queue cache failed'`));
    expect(lines[0]).toContain("queue: 'fanout'");
    expect(lines[0]!.trimEnd().split('\n')).toHaveLength(1);
  });

  it('writes an Error with its stack and cause, and a string as it is', () => {
    const { log, lines } = capture('info');
    log.error('boom', new Error('disk full', { cause: new Error('ENOSPC') }));
    log.error('said', 'plain words');
    expect(lines[0]).toMatch(new RegExp(`^${TIME} error boom: Error: disk full\\n\\s+at `));
    expect(lines[0]).toContain('caused by: Error: ENOSPC');
    expect(lines[1]).toMatch(new RegExp(`^${TIME} error said: plain words\\n$`));
  });

  it('keeps to its level: silent writes errors only, info no debug', () => {
    for (const [level, written] of [
      ['silent', ['error']],
      ['info', ['info', 'error']],
      ['debug', ['info', 'debug', 'error']],
    ] as const) {
      const { log, lines } = capture(level);
      log.info('i');
      log.debug('d');
      log.error('e');
      expect(lines.map((l) => l.split(/\s+/)[1])).toEqual(written);
    }
  });

  it("tags a child's lines with its bindings, and the child's child with both", () => {
    const { log, lines } = capture('info');
    const pipeline = log.child({ proc: 'pipeline' });
    pipeline.info('started');
    pipeline.child({ stage: 'deliver', note: 'two words' }).error('send failed', new Error('timeout'));
    log.info('parent');
    expect(lines[0]).toMatch(new RegExp(`^${TIME} info  \\[proc=pipeline\\] started\\n$`));
    expect(lines[1]).toMatch(
      new RegExp(`^${TIME} error \\[proc=pipeline stage=deliver note="two words"\\] send failed: Error: timeout\\n`),
    );
    expect(lines[2]).toMatch(new RegExp(`^${TIME} info  parent\\n$`));
  });
});

describe('createLogger, json', () => {
  const parse = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>);

  it('writes one JSON object per line with an ISO time, a level name, pid and hostname', () => {
    const { log, lines } = capture('info', 'json');
    log.info('listening');
    expect(lines[0]!.endsWith('\n')).toBe(true);
    const [rec] = parse(lines);
    expect(rec).toMatchObject({ level: 'info', msg: 'listening', pid: process.pid });
    expect(rec!.time).toMatch(new RegExp(`^${TIME}$`));
    expect(typeof rec!.hostname).toBe('string');
  });

  it('serializes an Error with pino (type, message, stack, own fields), anything else inspected', () => {
    const { log, lines } = capture('info', 'json');
    log.child({ proc: 'pipeline' }).error('boom', Object.assign(new TypeError('bad'), { code: 'E_BAD' }));
    log.error('pg-boss', { message: 'queue cache failed' });
    const [first, second] = parse(lines);
    expect(first).toMatchObject({ level: 'error', msg: 'boom', proc: 'pipeline' });
    expect(first!.err).toMatchObject({ type: 'TypeError', message: 'bad', code: 'E_BAD' });
    expect((first!.err as { stack: string }).stack).toMatch(/^TypeError: bad\n\s+at /);
    expect(second!.err).toBe("{ message: 'queue cache failed' }");
  });
});

describe('createLogger on stderr', () => {
  const here = dirname(fileURLToPath(import.meta.url));

  // Also what an async destination would pass (pino flushes its own destinations at exit); what fails here is a
  // default sink that is not fd 2, or a writer that buffers without flushing.
  it('writes to fd 2 by default, every line of a process that exits right after logging', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cairn-log-'));
    try {
      const script = join(dir, 'exit.ts');
      await writeFile(
        script,
        `import { createLogger } from ${JSON.stringify(pathToFileURL(join(here, 'log.ts')).href)};
const log = createLogger('info', { format: 'json' }).child({ proc: 'exiting' });
for (let i = 0; i < 2000; i++) log.info('line ' + i + ' ' + 'x'.repeat(200));
log.error('last words', new Error('bye'));
process.exit(3);
`,
      );
      const proc = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let out = '';
      proc.stderr.on('data', (c) => (out += c));
      const code = await new Promise((resolve) => proc.once('close', resolve));
      expect(code).toBe(3);
      const records = out
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg: string; proc: string });
      expect(records).toHaveLength(2001);
      expect(records.every((r) => r.proc === 'exiting')).toBe(true);
      expect(records.at(-1)!.msg).toBe('last words');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
