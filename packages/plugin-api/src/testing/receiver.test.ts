import { afterEach, describe, expect, it } from 'vitest';
import { type Receiver, startReceiver } from './receiver.ts';

// The receiver is what delivery tests believe about the far end: if it misrecords or misanswers, those
// tests pass or fail for the wrong reason.

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

describe('startReceiver', () => {
  let hook: Receiver | undefined;
  afterEach(async () => {
    await hook?.close();
    hook = undefined;
  });

  it('records each request (method, path, headers, raw and parsed body) and answers an empty 200 by default', async () => {
    hook = await startReceiver();
    expect(hook.url).toBe(`http://127.0.0.1:${hook.port}/hook`);
    const res = await post(`${hook.url}?x=1`, '{"event":{"event":"A"}}', { 'idempotency-key': 'k1' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    const [r] = hook.requests;
    expect(r).toMatchObject({ method: 'POST', path: '/hook?x=1', raw: '{"event":{"event":"A"}}', status: 200 });
    expect(r!.body).toEqual({ event: { event: 'A' } });
    expect(r!.headers['idempotency-key']).toBe('k1');
    expect(hook.accepted).toEqual([r]);
  });

  it('keeps a body that is not JSON as raw text only', async () => {
    hook = await startReceiver();
    await post(hook.url, 'not json');
    expect(hook.requests[0]).toMatchObject({ raw: 'not json', body: undefined });
  });

  it('answers as scripted: fixed, then changed, with queued answers first; only 2xx count as accepted', async () => {
    hook = await startReceiver({ answer: { status: 503 } });
    expect((await post(hook.url, '{}')).status).toBe(503);
    hook.answer({ status: 429, headers: { 'retry-after': '7' }, body: { error: 'slow down' } });
    const limited = await post(hook.url, '{}');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('7');
    expect(limited.headers.get('content-type')).toBe('application/json');
    expect(await limited.json()).toEqual({ error: 'slow down' });
    hook.queue({ status: 201 }, { status: 400, body: 'bad' });
    expect((await post(hook.url, '{}')).status).toBe(201);
    const bad = await post(hook.url, '{}');
    expect([bad.status, await bad.text()]).toEqual([400, 'bad']);
    expect((await post(hook.url, '{}')).status).toBe(429); // the queue is used up: back to the script
    expect(hook.requests.map((r) => r.status)).toEqual([503, 429, 201, 400, 429]);
    expect(hook.accepted.map((r) => r.status)).toEqual([201]);
  });

  it('answers queued answers first, then the script; reset() forgets requests and queue, keeping the script', async () => {
    const receiver = await startReceiver();
    hook = receiver;
    receiver.queue({ status: 503, headers: { 'retry-after': '7' }, body: { error: 'busy' } }, { status: 201 });
    const send = (body: unknown) =>
      post(`${receiver.url}?x=1`, JSON.stringify(body)).then(async (r) => [
        r.status,
        r.headers.get('retry-after'),
        await r.text(),
      ]);
    expect(await send({ n: 1 })).toEqual([503, '7', '{"error":"busy"}']);
    expect(await send({ n: 2 })).toEqual([201, null, '']);
    receiver.answer((r) => (r.body.n === 3 ? { status: 404 } : { status: 200, body: 'yes', delayMs: 20 }));
    expect(await send({ n: 3 })).toEqual([404, null, '']);
    expect(await send({ n: 4 })).toEqual([200, null, 'yes']);
    const seen = await receiver.waitFor(4, { among: 'all' });
    expect(seen.map((r) => [r.method, r.path, r.body, r.status])).toEqual([
      ['POST', '/hook?x=1', { n: 1 }, 503],
      ['POST', '/hook?x=1', { n: 2 }, 201],
      ['POST', '/hook?x=1', { n: 3 }, 404],
      ['POST', '/hook?x=1', { n: 4 }, 200],
    ]);
    await expect(receiver.waitFor(5, { timeoutMs: 50, among: 'all' })).rejects.toThrow(
      'timed out after 50 ms waiting for 5 requests (all); 4 arrived, 2 accepted',
    );
    receiver.queue({ status: 202 });
    receiver.reset();
    expect([receiver.requests, receiver.accepted, receiver.peakOpen()]).toEqual([[], [], 0]);
    expect(await send({ n: 5 })).toEqual([200, null, 'yes']); // the queued 202 is gone, the script stays
    expect(receiver.requests.map((r) => r.body)).toEqual([{ n: 5 }]);
  });

  it('chooses an answer per request with a function (nothing returned means 200)', async () => {
    hook = await startReceiver({ answer: (r) => (r.body?.fail ? { status: 500 } : undefined) });
    expect((await post(hook.url, '{"fail":true}')).status).toBe(500);
    expect((await post(hook.url, '{}')).status).toBe(200);
  });

  it('holds a delayed request open, counting it in open() and peakOpen(), until it is answered', async () => {
    hook = await startReceiver({ answer: { delayMs: 300 } });
    const sent = [post(hook.url, '{"n":1}'), post(hook.url, '{"n":2}')];
    const arrived = await hook.waitFor(2, { among: 'all' });
    expect(arrived.map((r) => r.status)).toEqual([undefined, undefined]);
    expect(hook.open()).toHaveLength(2);
    expect(hook.accepted).toEqual([]);
    await Promise.all(sent);
    expect(hook.open()).toEqual([]);
    expect(hook.peakOpen()).toBe(2);
    expect(hook.accepted).toHaveLength(2);
  });

  it('waitFor resolves with the first accepted match, and fails naming what it waited for', async () => {
    hook = await startReceiver({ answer: (r) => ({ status: r.body.n === 1 ? 503 : 200 }) });
    const waiting = hook.waitFor((r) => r.body.n >= 1);
    await post(hook.url, '{"n":1}'); // refused: not a match among the accepted
    await post(hook.url, '{"n":2}');
    expect((await waiting).body).toEqual({ n: 2 });
    await expect(hook.waitFor(3, { timeoutMs: 50 })).rejects.toThrow(
      'timed out after 50 ms waiting for 3 requests (accepted); 2 arrived, 1 accepted',
    );
  });

  it('answers by hand with respond (the request open until it finishes), repeats array headers, counts connections', async () => {
    const release: Array<() => void> = [];
    hook = await startReceiver({
      keepAliveTimeoutMs: 5_000,
      answer: (r) =>
        r.path === '/held'
          ? {
              respond: (res) => {
                res.writeHead(202, { 'content-type': 'text/plain' });
                res.write('start ');
                release.push(() => res.end('end'));
              },
            }
          : { headers: { 'set-cookie': ['a=1', 'b=2'] }, body: 'plain' },
    });
    const plain = await fetch(hook.url);
    expect([await plain.text(), plain.headers.getSetCookie()]).toEqual(['plain', ['a=1', 'b=2']]);
    const held = fetch(`${hook.origin}/held`).then((r) => r.text());
    const [request] = await hook.waitFor(2, { among: 'all' }).then((all) => all.slice(1));
    expect([hook.open(), request!.status]).toEqual([[request], undefined]);
    release[0]!();
    expect(await held).toBe('start end');
    await hook.waitFor((r) => r.path === '/held');
    expect([hook.open(), request!.status, hook.accepted.length]).toEqual([[], 202, 2]);
    expect(hook.connections()).toBeGreaterThanOrEqual(1);
    expect(hook.connections()).toBeLessThanOrEqual(2);
  });

  it('listens on every address with host null, and close() ends open connections', async () => {
    hook = await startReceiver({ host: null, answer: (r) => (r.path === '/slow' ? { delayMs: 10_000 } : undefined) });
    expect((await fetch(`http://127.0.0.1:${hook.port}/`)).status).toBe(200);
    // ::1 may be missing on a machine without IPv6; when it is there, it answers too.
    const v6 = await fetch(`http://[::1]:${hook.port}/`).catch(() => undefined);
    if (v6) expect(v6.status).toBe(200);
    const pending = fetch(`http://127.0.0.1:${hook.port}/slow`).then(
      () => 'answered',
      () => 'closed',
    );
    await hook.waitFor((r) => r.path === '/slow', { among: 'all' });
    await hook.close();
    hook = undefined;
    expect(await pending).toBe('closed');
  });
});
