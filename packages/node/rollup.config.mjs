// dist/ for the npm tarball: one ESM and one CommonJS file (Node >= 20, no TypeScript at run time) and one bundled
// declaration file for each (index.d.ts for `import`, index.d.cts for `require`). Inside the monorepo nothing reads
// dist/: the `@cairn/source` export condition points tsx, vitest and tsc at src/.
import { builtinModules } from 'node:module';
import { dts } from 'rollup-plugin-dts';
import esbuild from 'rollup-plugin-esbuild';

// @cairn/node has no runtime dependencies: only Node's own modules stay imports.
const external = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default [
  {
    input: 'src/index.ts',
    external,
    // package.json is read for `version` only; esbuild turns it into a module rollup can tree-shake.
    plugins: [esbuild({ target: 'node20', loaders: { '.json': 'json' } })],
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
