#!/usr/bin/env node
// The `cairn` command. npm links a package's bin when it installs, before anything is built, and skips a bin
// whose file is missing then: this file is in the repository so the link always exists. It runs the compiled
// CLI (`npm run build` makes server/dist); from source, `npm run cairn -- <command>` does the same with tsx.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('cairn: the server is not built yet: run `npm run build` first\n');
  process.exit(1);
}
await import(cli.href);
