// `npm run build -w @cairn/server`: dist/, the server as plain JavaScript that `node` runs without tsx or any
// export condition (dist/cli.js is the `cairn` bin). tsc emits every source file beside where it was, with
// relative imports rewritten from .ts to .js, so paths computed from import.meta.url (the migrations, the
// repository's demo shop) stay the same from dist/ as from src/.
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = `${root}dist`;
// From scratch: a migration or module deleted from src/ must not live on in dist/ (a stale .sql would be applied).
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
// What the server reads at run time besides modules: the numbered migrations (db/migrate.ts).
cpSync(`${root}src/db/migrations`, `${dist}/db/migrations`, { recursive: true });
// npm links the bin when it installs, before any build: make it executable here.
chmodSync(`${dist}/cli.js`, 0o755);
