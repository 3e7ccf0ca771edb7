// dist/ for the npm tarball: one ESM and one CommonJS file (Node >= 20.18.1, no TypeScript at run time) and one
// bundled declaration file for each (index.d.ts for `import`, index.d.cts for `require`). Inside the monorepo nothing
// reads dist/: the `@cairn/source` export condition points tsx, vitest and tsc at src/.
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dts } from 'rollup-plugin-dts';
import esbuild from 'rollup-plugin-esbuild';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));
// undici (dependency) and zod (peer: the plugin's own zod builds the settings schema) stay imports, never bundled.
const packages = [...builtinModules, ...Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies })];
const external = (id) => id.startsWith('node:') || packages.some((name) => id === name || id.startsWith(`${name}/`));

export default [
  {
    input: 'src/index.ts',
    external,
    plugins: [esbuild({ target: 'node20' })],
    output: [
      { file: 'dist/index.js', format: 'es' },
      { file: 'dist/index.cjs', format: 'cjs' },
    ],
  },
  {
    input: 'src/index.ts',
    external,
    plugins: [dts()],
    output: [
      { file: 'dist/index.d.ts', format: 'es' },
      { file: 'dist/index.d.cts', format: 'es' },
    ],
  },
];
