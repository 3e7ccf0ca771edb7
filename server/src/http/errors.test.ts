import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../log.ts';
import { onError } from './errors.ts';

describe('onError', () => {
  it('logs an unexpected failure under the route pattern, never the path that may carry an identity', async () => {
    const lines: string[] = [];
    const log: Logger = { info: () => {}, debug: () => {}, error: (m: string) => void lines.push(m) };
    const app = new Hono();
    app.put('/api/profiles/by/:type/:value', () => {
      throw new Error('boom');
    });
    app.onError(onError(log));
    const res = await app.request('/api/profiles/by/email/ada%40example.com', { method: 'PUT' });
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { code: string; requestId: string } };
    expect(body.error.code).toBe('internal');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('PUT /api/profiles/by/:type/:value failed');
    expect(lines[0]).toContain(body.error.requestId);
    expect(lines[0]).not.toContain('ada');
  });
});
