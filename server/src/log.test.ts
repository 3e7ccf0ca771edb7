import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from './log.ts';

describe('createLogger', () => {
  afterEach(() => vi.restoreAllMocks());
  const lines = () => {
    const out: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    return out;
  };

  it('writes a plain object error (as pg-boss emits) readably, on one line, never [object Object]', () => {
    const out = lines();
    createLogger('silent').error('pg-boss', {
      message: 'queue cache failed',
      code: '57P01',
      detail: { queue: 'fanout' },
    });
    expect(out).toHaveLength(1);
    expect(out[0]).not.toContain('[object Object]');
    expect(out[0]).toContain("message: 'queue cache failed'");
    expect(out[0]).toContain("queue: 'fanout'");
    expect(out[0]!.trimEnd().split('\n')).toHaveLength(1);
  });

  it('writes an Error with its stack, and a string as it is', () => {
    const out = lines();
    const log = createLogger('info');
    log.error('boom', new Error('disk full'));
    log.error('said', 'plain words');
    expect(out[0]).toMatch(/^\[cairn\] error: boom: Error: disk full\n\s+at /);
    expect(out[1]).toBe('[cairn] error: said: plain words\n');
  });
});
