import { afterEach, describe, expect, it } from 'vitest';
import { uuid } from '../src/state.ts';

describe('uuid', () => {
  // An own property shadows Crypto.prototype.randomUUID; deleting it restores the real one.
  afterEach(() => Reflect.deleteProperty(crypto, 'randomUUID'));

  it('falls back to getRandomValues where randomUUID is missing (pages served over plain http)', () => {
    Object.defineProperty(crypto, 'randomUUID', { value: undefined, configurable: true });
    const ids = Array.from({ length: 1000 }, uuid);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(1000);
  });
});
