import { createServer } from 'node:net';

/**
 * A free port below Linux's ephemeral range (32768+), for a server whose address must be known before it
 * starts (CAIRN_PUBLIC_URL, the base of unsubscribe links) or that restarts on the same port: while it is
 * down, the kernel cannot hand that port to some client connection of this machine and make the restart
 * fail with EADDRINUSE.
 *
 * @example
 * const port = await freePort();
 * const server = await spawnServer({ ...db.env, PORT: String(port) });
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer()
        .once('error', () => resolve(false))
        .listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}
