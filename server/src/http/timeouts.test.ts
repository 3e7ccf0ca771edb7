// Issue 16, safe defaults: a client that trickles its request cannot hold a socket for Node's default five
// minutes (headers and whole request are bounded, then 408 and closed), and /metrics can require a token.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cairn } from '../server.ts';
import { createTestDatabase, startTestCairn, type TestDatabase } from '../testing/index.ts';

const TOKEN = 'metrics-token-0123456789';

/** Sends `parts` over a raw socket (a pause between them) and resolves with what came back and when the server closed. */
function trickle(url: string, parts: string[], pauseMs: number): Promise<{ answer: string; closedAfterMs: number }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(Number(port), hostname);
    let answer = '';
    socket.on('data', (d) => {
      answer += d.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve({ answer, closedAfterMs: Date.now() - started }));
    socket.on('connect', async () => {
      for (const part of parts) {
        if (socket.destroyed) return;
        socket.write(part);
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    });
  });
}

describe('request deadlines and the metrics token (embedded)', () => {
  let db: TestDatabase;
  let cairn: Cairn;
  beforeAll(async () => {
    db = await createTestDatabase('http/timeouts.test.ts', 'embedded');
    cairn = await startTestCairn({
      ...db.env,
      CAIRN_HEADERS_TIMEOUT_MS: '1000',
      CAIRN_REQUEST_TIMEOUT_MS: '1500',
      CAIRN_METRICS_TOKEN: TOKEN,
    });
  });
  afterAll(async () => {
    await cairn?.close();
    await db?.drop();
  });

  it('answers 408 and closes a request whose body never finishes, within its deadline', async () => {
    const head = `POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`;
    // The body comes one byte a second: never complete within the 1.5 s the request may take.
    const r = await trickle(cairn.url, [head, '{', '"', 'a', '"', ':', '1', ',', ' ', ' ', ' '], 1000);
    expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
    expect(r.closedAfterMs).toBeLessThan(4000);
  }, 20_000);

  it('answers 408 and closes a request whose headers never end, within its deadline', async () => {
    const r = await trickle(cairn.url, ['GET /healthz HTTP/1.1\r\n', 'Host: x\r\n', 'X-A: 1\r\n', 'X-B: 2\r\n'], 1000);
    expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
    expect(r.closedAfterMs).toBeLessThan(3500);
  }, 20_000);

  it('serves /metrics only with the bearer token, when one is set', async () => {
    const none = await fetch(`${cairn.url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await fetch(`${cairn.url}/metrics`, { headers: { authorization: 'Bearer not-the-token-at-all' } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${cairn.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(right.status).toBe(200);
    expect(await right.text()).toMatch(/cairn_http_requests_total/);
    // The probes stay open: a load balancer has no token.
    expect((await fetch(`${cairn.url}/healthz`)).status).toBe(200);
  });
});
