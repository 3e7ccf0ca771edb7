import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { apiError, onError } from '../http/errors.ts';
import type { Logger } from '../log.ts';
import { DomainError } from './errors.ts';

const logged: unknown[] = [];
const log: Logger = {
  info: () => {},
  debug: () => {},
  error: (message, err) => logged.push([message, err]),
};

function appThrowing(err: Error): Hono {
  const app = new Hono();
  app.get('/x', () => {
    throw err;
  });
  app.onError(onError(log));
  return app;
}

describe('DomainError', () => {
  it('is rendered by onError as the API error body with its status', async () => {
    const res = await appThrowing(new DomainError(410, 'erased', 'profile p was erased')).request('http://localhost/x');
    expect(res.status).toBe(410);
    expect(await res.json()).toEqual({ error: { code: 'erased', message: 'profile p was erased' } });
  });

  it('carries details to the client when given', async () => {
    const err = new DomainError(409, 'conflict', 'tag vip is used', [{ kind: 'audience', key: 'a' }]);
    const res = await appThrowing(err).request('http://localhost/x');
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({
      error: { code: 'conflict', message: 'tag vip is used', details: [{ kind: 'audience', key: 'a' }] },
    });
  });

  it('answers exactly as apiError does for the same refusal', async () => {
    const a = await appThrowing(new DomainError(404, 'not_found', 'no profile p')).request('http://localhost/x');
    const b = await appThrowing(apiError(404, 'not_found', 'no profile p')).request('http://localhost/x');
    expect(a.status).toBe(b.status);
    expect(await a.json()).toEqual(await b.json());
  });

  it('is never logged as a failure (only unexpected errors are)', async () => {
    logged.length = 0;
    await appThrowing(new DomainError(400, 'bad_request', 'no')).request('http://localhost/x');
    expect(logged).toEqual([]);
    const res = await appThrowing(new Error('boom')).request('http://localhost/x');
    expect(res.status).toBe(500);
    expect(logged).toHaveLength(1);
  });

  it('subclasses keep the rendering and add what their callers need', async () => {
    class BodyLike extends DomainError {
      constructor(readonly raw: Uint8Array) {
        super(413, 'payload_too_large', 'too large');
      }
    }
    const err = new BodyLike(new Uint8Array([1]));
    expect(err).toBeInstanceOf(DomainError);
    const res = await appThrowing(err).request('http://localhost/x');
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({ error: { code: 'payload_too_large', message: 'too large' } });
  });
});
