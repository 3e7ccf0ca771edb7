// `npm run build -w @cairn/server`: dist/, the server as plain JavaScript that `node` runs without tsx or any
// export condition (dist/cli.js is the `cairn` bin). tsc emits every source file beside where it was, with
// relative imports rewritten from .ts to .js, so paths computed from import.meta.url (the migrations, the
// repository's demo shop) stay the same from dist/ as from src/.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist`;
// Built beside, then swapped in: a server started from dist/ meanwhile (tests, a bench) never finds it half
// written, and a module or migration deleted from src/ does not live on in dist/ (a stale .sql would be applied).
const next = `${root}.dist-next`;
rmSync(next, { recursive: true, force: true });
try {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', next], { cwd: root, stdio: 'inherit' });
  // What the server reads at run time besides modules: the numbered migrations (db/migrate.ts).
  cpSync(`${root}src/db/migrations`, `${next}/db/migrations`, { recursive: true });
  // npm links the bin when it installs, before any build: make it executable here.
  chmodSync(`${next}/cli.js`, 0o755);
  rmSync(dist, { recursive: true, force: true });
  renameSync(next, dist);
} finally {
  rmSync(next, { recursive: true, force: true });
}
