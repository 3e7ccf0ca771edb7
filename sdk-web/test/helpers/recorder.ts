import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { CairnEvent, Options } from '../../src/types.ts';
import { bundle, root } from './build.ts';

/** One POST /v1/batch the recorder saw. */
export interface Received {
  status: number;
  headers: IncomingHttpHeaders;
  body: { batch: CairnEvent[]; sentAt: string; writeKey?: string };
  /** When the request arrived (ms since epoch). */
  at: number;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
}

const snippet = readFileSync(join(root, 'snippet.html'), 'utf8');

/**
 * Stands in for the Cairn server: serves the built IIFE and test pages that embed the documented copy-paste
 * snippet, and records POST /v1/batch. It answers from a script of replies, then with `failWith` if set, else 200;
 * `stop()`/`start()` close and re-open the same port to play "server down".
 */
export async function startRecorder() {
  const requests: Received[] = [];
  const script: Reply[] = [];
  let server: Server | undefined;
  let port = 0;

  const rec = {
    requests,
    /** Options for the next page loads, passed to `cairn.init()` by the test page. */
    options: {} as Partial<Options>,
    /** Extra HTML for the next page loads' body. */
    html: '',
    /** Answer every request with this status (until set back to 0). */
    failWith: 0,
    get origin() {
      return `http://127.0.0.1:${port}`;
    },
    reply(...replies: Reply[]) {
      script.push(...replies);
    },
    /** Events acknowledged with 2xx, in arrival order, repeats included. */
    delivered(): CairnEvent[] {
      return requests.filter((r) => r.status < 300).flatMap((r) => r.body.batch);
    },
    reset() {
      requests.length = script.length = 0;
      rec.options = {};
      rec.html = '';
      rec.failWith = 0;
    },
    start,
    /** Stop listening and cut open connections: the browser now sees connection refused. */
    async stop() {
      const s = server;
      server = undefined;
      s?.closeAllConnections();
      await new Promise((r) => s?.close(r));
    },
  };

  function page() {
    const loader = snippet
      .replace('YOUR_WRITE_KEY', 'wk_test')
      .replace('https://YOUR_CAIRN_HOST/sdk/v0/cairn.min.js', '/cairn.min.js')
      .replace('https://YOUR_CAIRN_HOST', rec.origin)
      .replace('</script>', `cairn.init(${JSON.stringify(rec.options)});\n</script>`);
    return `<!doctype html><html><head><title>Test page</title>${loader}</head><body>${rec.html}</body></html>`;
  }

  /** examples/shop as the Cairn server serves it: under /demo/, with the write key and host filled in. */
  function demo(path: string, res: ServerResponse) {
    const file = join(root, '../examples/shop', path.slice('/demo/'.length) || 'index.html');
    if (!existsSync(file)) return res.writeHead(404).end();
    const type = { html: 'text/html', js: 'text/javascript', css: 'text/css' }[file.split('.').pop()!];
    res.writeHead(200, { 'content-type': type ?? 'application/octet-stream' });
    res.end(
      readFileSync(file, 'utf8').replaceAll('__CAIRN_WRITE_KEY__', 'wk_test').replaceAll('__CAIRN_HOST__', rec.origin),
    );
  }

  function start() {
    return new Promise<void>((resolve, reject) => {
      const s = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const path = new URL(req.url!, rec.origin).pathname;
          if (req.method === 'POST' && path === '/v1/batch') {
            const reply = script.shift() ?? { status: rec.failWith || 200 };
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            requests.push({ status: reply.status, headers: req.headers, body, at: Date.now() });
            res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
            return res.end(JSON.stringify(reply.status < 300 ? { success: true } : { error: { code: 'test' } }));
          }
          if (path.startsWith('/demo/') && path !== '/demo/cairn.min.js') return demo(path, res);
          if (path === '/cairn.min.js' || path === '/demo/cairn.min.js') {
            res.writeHead(200, { 'content-type': 'text/javascript' });
            return res.end(readFileSync(bundle));
          }
          if (path === '/favicon.ico') return res.writeHead(404).end();
          res.writeHead(200, { 'content-type': 'text/html' });
          res.end(path === '/blank' ? '<!doctype html><title>Blank</title>' : page());
        });
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  }

  await start();
  return rec;
}

export type Recorder = Awaited<ReturnType<typeof startRecorder>>;
