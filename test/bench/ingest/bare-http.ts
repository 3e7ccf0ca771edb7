import { createServer } from 'node:http';

// The reference for the single-event path (`npm run bench:ingest`): a bare node:http server in a
// process of its own that does the least a tracking endpoint must do (read the body, parse the JSON,
// check there is an Authorization header, answer 200 with a small JSON body) and nothing else: no
// validation, no database. Cairn's /v1/track is measured against it with the same load generator.
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let status = 200;
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { event?: unknown };
      if (!req.headers.authorization || typeof body.event !== 'string') status = 400;
    } catch {
      status = 400;
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(status === 200 ? '{"success":true}' : '{"error":"bad request"}');
  });
});
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`listening on ${typeof address === 'object' && address ? address.port : 0}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
