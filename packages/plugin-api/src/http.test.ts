import { createHash } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkResponse, PermanentError, RetryableError } from './errors.ts';
import { closePluginAgent, MAX_RESPONSE_BYTES } from './http.ts';
import { createPluginFetch } from './run.ts';
import { type ReceivedRequest, type Receiver, type ScriptedAnswer, startReceiver } from './testing.ts';

type Route = (request: ReceivedRequest) => ScriptedAnswer;

/**
 * A small site on the testing kit's receiver: answers by path (404 for any other). Node's 5 s keep-alive,
 * not the receiver's 1 s, so that undici reuses connections as it would with a real server.
 */
function serve(routes: Record<string, Route>): Promise<Receiver> {
  return startReceiver({
    keepAliveTimeoutMs: 5_000,
    answer: (request) => {
      const path = new URL(request.path, 'http://x').pathname;
      return (
        routes[path]?.(request) ?? { status: 404, headers: { 'content-type': 'text/plain' }, body: `no route ${path}` }
      );
    },
  });
}

const query = (request: ReceivedRequest) => new URL(request.path, 'http://x').searchParams;

const echo: Route = (r) => ({ body: { method: r.method, url: r.path, headers: r.headers, body: r.raw } });

interface Echo {
  method: string;
  url: string;
  headers: Record<string, string | undefined>;
  body: string;
}

async function echoed(response: Promise<Response>): Promise<Echo> {
  return (await (await response).json()) as Echo;
}

async function failureOf(p: Promise<unknown>): Promise<RetryableError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RetryableError);
  return err as RetryableError;
}

describe('ctx.fetch on undici', () => {
  const never = new AbortController().signal;
  const fetch = createPluginFetch(never);
  let a: Receiver;
  let b: Receiver;
  const held: Array<() => void> = [];
  const big = Buffer.alloc(5 * 1024 * 1024, 'abcdefghij');

  beforeAll(async () => {
    b = await serve({
      '/echo': echo,
    });
    a = await serve({
      '/echo': echo,
      '/status': (r) => {
        const q = query(r);
        const headers: Record<string, string | string[]> = { 'content-type': 'text/plain' };
        if (q.get('retry')) headers['retry-after'] = q.get('retry')!;
        headers['set-cookie'] = ['a=1', 'b=2'];
        return {
          status: Number(q.get('code')),
          headers,
          body: q.get('code') === '204' ? undefined : `answer ${q.get('code')}`,
        };
      },
      '/slow-headers': () => ({ delayMs: 3_000, body: 'late' }),
      '/slow-body': () => ({
        respond: (res) => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('start');
          setTimeout(() => res.end('end'), 3_000).unref();
        },
      }),
      // The upload is ASCII, so its text (raw) hashes as its bytes do.
      '/big': (r) => ({
        headers: {
          'content-type': 'application/octet-stream',
          'x-upload-sha256': createHash('sha256').update(r.raw).digest('hex'),
        },
        body: big,
      }),
      '/gzip': () => ({
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: gzipSync(JSON.stringify({ ok: true })),
      }),
      '/ignored': () => ({ headers: { 'content-type': 'text/plain' }, body: 'x'.repeat(64 * 1024) }),
      '/to-echo': (r) => {
        const q = query(r);
        return {
          status: Number(q.get('code')),
          headers: { location: q.get('to') ?? '/echo?from=redirect' },
          body: 'moved',
        };
      },
      '/hold': () => ({ respond: (res) => void held.push(() => res.end('released')) }),
      '/loop': () => ({ status: 302, headers: { location: '/loop' } }),
    });
  });

  afterAll(async () => {
    await Promise.all([a.close(), b.close()]);
    await closePluginAgent();
  });

  it('sends the method, headers (object, array or Headers) and body it is given', async () => {
    const post = await echoed(
      fetch(`${a.origin}/echo?x=1`, { method: 'post', headers: { 'X-One': '1' }, body: '{"a":1}' }),
    );
    expect(post).toMatchObject({ method: 'POST', url: '/echo?x=1', body: '{"a":1}' });
    expect(post.headers).toMatchObject({ 'x-one': '1', 'content-type': 'text/plain;charset=UTF-8', accept: '*/*' });

    const put = await echoed(
      fetch(new URL(`${a.origin}/echo`), {
        method: 'PUT',
        headers: [
          ['content-type', 'application/json'],
          ['x-two', '2'],
        ],
        body: new TextEncoder().encode('bytes'),
      }),
    );
    expect(put).toMatchObject({ method: 'PUT', body: 'bytes' });
    expect(put.headers).toMatchObject({ 'content-type': 'application/json', 'x-two': '2', 'content-length': '5' });

    const patch = await echoed(
      fetch(`${a.origin}/echo`, {
        method: 'PATCH',
        headers: new Headers({ 'x-three': '3' }),
        body: new URLSearchParams({ to: '+15550001', text: 'hi there' }),
      }),
    );
    expect(patch).toMatchObject({ method: 'PATCH', body: 'to=%2B15550001&text=hi+there' });
    expect(patch.headers).toMatchObject({
      'x-three': '3',
      'content-type': 'application/x-www-form-urlencoded;charset=UTF-8',
    });

    const blob = await echoed(
      fetch(`${a.origin}/echo`, { method: 'POST', body: new Blob(['from a blob'], { type: 'text/csv' }) }),
    );
    expect(blob).toMatchObject({ body: 'from a blob', headers: { 'content-type': 'text/csv' } });

    const get = await echoed(fetch(`${a.origin}/echo`));
    expect(get).toMatchObject({ method: 'GET', body: '' });
    const del = await echoed(fetch(`${a.origin}/echo`, { method: 'DELETE' }));
    expect(del.method).toBe('DELETE');
    const head = await fetch(`${a.origin}/echo`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('hands bodies it does not take itself (FormData) to the global fetch', async () => {
    const form = new FormData();
    form.set('field', 'value');
    const res = await echoed(fetch(`${a.origin}/echo`, { method: 'POST', body: form }));
    expect(res.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/);
    expect(res.body).toContain('name="field"');
  });

  it('returns a standard Response for any status, which checkResponse reads as before', async () => {
    const created = await fetch(`${a.origin}/status?code=201`);
    expect(created).toBeInstanceOf(Response);
    expect([created.status, created.ok, await created.text()]).toEqual([201, true, 'answer 201']);
    expect(created.headers.get('content-type')).toBe('text/plain');
    expect(created.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(created.url).toBe(`${a.origin}/status?code=201`);

    const empty = await fetch(`${a.origin}/status?code=204`);
    expect([empty.status, await empty.text()]).toEqual([204, '']);

    const missing = await fetch(`${a.origin}/status?code=404`);
    expect(missing.status).toBe(404);
    const permanent = await checkResponse(missing).catch((e: unknown) => e);
    expect(permanent).toBeInstanceOf(PermanentError);
    expect((permanent as Error).message).toBe('HTTP 404: answer 404');
    expect((permanent as PermanentError).statusCode).toBe(404);

    const limited = await checkResponse(await fetch(`${a.origin}/status?code=429&retry=30`)).catch((e: unknown) => e);
    expect(limited).toBeInstanceOf(RetryableError);
    expect((limited as RetryableError).retryAfter).toBe(30);

    const down = await checkResponse(await fetch(`${a.origin}/status?code=503`)).catch((e: unknown) => e);
    expect(down).toBeInstanceOf(RetryableError);
    expect((down as Error).message).toBe('HTTP 503: answer 503');
    expect((down as RetryableError).statusCode).toBe(503);
  });

  it('decodes a gzip body like fetch', async () => {
    expect(await (await fetch(`${a.origin}/gzip`)).json()).toEqual({ ok: true });
  });

  it('times out, waiting for the headers or for the rest of the body, as a retryable error', async () => {
    let started = Date.now();
    const headers = await failureOf(fetch(`${a.origin}/slow-headers`, { timeoutMs: 150 }));
    expect(headers.message).toBe('request failed: timed out after 150 ms');
    expect(Date.now() - started).toBeLessThan(2_000);

    started = Date.now();
    const body = await failureOf(fetch(`${a.origin}/slow-body`, { timeoutMs: 150 }));
    expect(body.message).toBe('request failed: timed out after 150 ms');
    expect(Date.now() - started).toBeLessThan(2_000);

    const slowDefault = createPluginFetch(never, 120);
    expect((await failureOf(slowDefault(`${a.origin}/slow-headers`))).message).toMatch(/timed out after 120 ms/);
  });

  it("stops when the delivery's signal or the call's own signal aborts", async () => {
    const delivery = new AbortController();
    const f = createPluginFetch(delivery.signal);
    const started = Date.now();
    const pending = failureOf(f(`${a.origin}/slow-headers`));
    setTimeout(() => delivery.abort(new Error('server shutting down')), 100);
    expect((await pending).message).toBe('request failed: server shutting down');
    expect(Date.now() - started).toBeLessThan(2_000);
    // Already aborted: nothing is sent.
    const before = a.connections();
    expect((await failureOf(f(`${b.origin}/echo`))).message).toMatch(/server shutting down/);
    expect(a.connections()).toBe(before);

    const own = new AbortController();
    const mine = failureOf(fetch(`${a.origin}/slow-headers`, { signal: own.signal }));
    setTimeout(() => own.abort(), 100);
    expect((await mine).message).toMatch(/^request failed: .*abort/i);
  });

  it('keeps one abort listener on the delivery signal, however many calls are in flight', async () => {
    const delivery = new AbortController();
    const f = createPluginFetch(delivery.signal);
    const calls = Array.from({ length: 30 }, () => f(`${a.origin}/hold`).then((r) => r.status));
    while (held.length < 30) await new Promise((r) => setTimeout(r, 10));
    expect(getEventListeners(delivery.signal, 'abort')).toHaveLength(1);
    for (const release of held.splice(0)) release();
    expect(await Promise.all(calls)).toEqual(Array(30).fill(200));
  });

  it('turns a refused connection into a retryable error naming the cause', async () => {
    const gone = await serve({});
    await gone.close();
    const err = await failureOf(fetch(`${gone.origin}/echo`));
    expect(err.message).toMatch(/^request failed: .*ECONNREFUSED/);
    expect((await failureOf(fetch('not a url'))).message).toMatch(/^request failed: .*URL/i);
  });

  it('reuses keep-alive connections for calls one after another, read or not', async () => {
    const reuse = await serve({ '/echo': echo, '/ignored': () => ({ body: 'x'.repeat(64 * 1024) }) });
    try {
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${reuse.origin}/${i % 2 ? 'echo' : 'ignored'}`, { method: 'POST', body: `n=${i}` });
        expect(res.status).toBe(200);
        // Half the bodies are never read, as checkResponse does on a 2xx: the socket must still come back.
      }
      // undici frees a connection a tick after its response ends, so calls sent back to back alternate
      // between two; without reuse there would be 40.
      expect(reuse.connections()).toBeLessThanOrEqual(2);
      // 128 calls 8 at a time: they open connections (up to twice their number, for the same reason),
      // then reuse them.
      for (let i = 0; i < 16; i++) await Promise.all(Array.from({ length: 8 }, () => fetch(`${reuse.origin}/ignored`)));
      expect(reuse.connections()).toBeLessThanOrEqual(2 + 16);
    } finally {
      await reuse.close();
    }
  });

  it('sends and receives bodies of several megabytes', async () => {
    const upload = Buffer.alloc(6 * 1024 * 1024, 'zyxwvu');
    const res = await fetch(`${a.origin}/big`, { method: 'POST', body: upload, timeoutMs: 30_000 });
    expect(res.headers.get('x-upload-sha256')).toBe(createHash('sha256').update(upload).digest('hex'));
    const down = new Uint8Array(await res.arrayBuffer());
    expect(down.byteLength).toBe(big.byteLength);
    expect(createHash('sha256').update(down).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
  });

  it('refuses a response body over MAX_RESPONSE_BYTES (it would be held in memory) as a retryable error', async () => {
    const huge = await serve({
      '/huge': () => ({
        respond: (res) => {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          const chunk = Buffer.alloc(1024 * 1024);
          let left = MAX_RESPONSE_BYTES / chunk.byteLength + 1;
          const more = () => {
            while (left > 0 && !res.destroyed) {
              left--;
              if (!res.write(chunk)) return void res.once('drain', more);
            }
            res.end();
          };
          more();
        },
      }),
    });
    try {
      const err = await failureOf(fetch(`${huge.origin}/huge`, { timeoutMs: 30_000 }));
      expect(err.message).toMatch(/^request failed: .*max size/i);
    } finally {
      await huge.close();
    }
  });

  it('follows redirects like fetch: 302 after POST becomes GET, 307 keeps the body', async () => {
    const moved = await fetch(`${a.origin}/to-echo?code=302`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer t' },
      body: '{"a":1}',
    });
    expect(moved.redirected).toBe(true);
    expect(moved.url).toBe(`${a.origin}/echo?from=redirect`);
    const got = (await moved.json()) as Echo;
    expect(got).toMatchObject({ method: 'GET', url: '/echo?from=redirect', body: '' });
    expect(got.headers['content-type']).toBeUndefined();
    expect(got.headers.authorization).toBe('Bearer t');

    const kept = await echoed(
      fetch(`${a.origin}/to-echo?code=307`, { method: 'POST', headers: { 'x-k': 'v' }, body: 'same body' }),
    );
    expect(kept).toMatchObject({ method: 'POST', body: 'same body' });
    expect(kept.headers['x-k']).toBe('v');
  });

  it('drops credentials when a redirect leaves the origin, and stops redirect loops', async () => {
    const to = encodeURIComponent(`${b.origin}/echo`);
    const other = await echoed(
      fetch(`${a.origin}/to-echo?code=308&to=${to}`, {
        method: 'PUT',
        headers: { authorization: 'Bearer secret', cookie: 's=1', 'x-keep': 'yes' },
        body: 'payload',
      }),
    );
    expect(other).toMatchObject({ method: 'PUT', body: 'payload' });
    expect(other.headers.authorization).toBeUndefined();
    expect(other.headers.cookie).toBeUndefined();
    expect(other.headers['x-keep']).toBe('yes');

    expect((await failureOf(fetch(`${a.origin}/loop`))).message).toMatch(/more than 20 redirects/);

    const manual = await fetch(`${a.origin}/to-echo?code=302`, { redirect: 'manual' });
    expect([manual.status, manual.headers.get('location')]).toEqual([302, '/echo?from=redirect']);
  });
});
