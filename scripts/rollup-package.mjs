// The one rollup config of Cairn's publishable Node packages (@cairn/plugin-api, @cairn/node, the plugins):
// for each entry, one ESM and one CommonJS file for Node >= 20 (no TypeScript at run time) and one bundled
// declaration file for each module format (<name>.d.ts for `import`, <name>.d.cts for `require`). Inside the
// monorepo nothing reads dist/: the `@cairn/source` export condition points tsx, vitest and tsc at the sources.
//
//   // packages/plugin-api/rollup.config.mjs
//   import { packageConfig } from '../../scripts/rollup-package.mjs';
//   export default packageConfig(import.meta.url, { index: 'src/index.ts', testing: 'src/testing.ts' });
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dts } from 'rollup-plugin-dts';
import esbuild from 'rollup-plugin-esbuild';

/**
 * Rollup options building `dist/<name>.{js,cjs,d.ts,d.cts}` for each entry of a package. Dependencies and
 * peer dependencies stay imports (a plugin's zod and @cairn/plugin-api are the server's, never bundled),
 * as do Node's own modules; everything else is bundled. Entries are built one by one, so no shared chunk
 * appears: an entry should import only types from another.
 *
 * @param {string} configUrl the calling rollup.config.mjs's `import.meta.url` (its package.json is beside it)
 * @param {Record<string, string>} entries output name → source file, relative to the package
 * @param {{ target?: string }} [options] esbuild's target (default node20)
 * @returns {import('rollup').RollupOptions[]}
 */
export function packageConfig(configUrl, entries = { index: 'src/index.ts' }, options = {}) {
  const pkg = JSON.parse(readFileSync(new URL('./package.json', configUrl), 'utf8'));
  const packages = [
    ...builtinModules,
    ...Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies, ...pkg.optionalDependencies }),
  ];
  const external = (id) => id.startsWith('node:') || packages.some((name) => id === name || id.startsWith(`${name}/`));
  return Object.entries(entries).flatMap(([name, input]) => [
    {
      input,
      external,
      // A package.json imported for its `version` becomes a module rollup can tree-shake.
      plugins: [esbuild({ target: options.target ?? 'node20', loaders: { '.json': 'json' } })],
      output: [
        { file: `dist/${name}.js`, format: 'es' },
        { file: `dist/${name}.cjs`, format: 'cjs', exports: 'named' },
      ],
    },
    {
      input,
      external,
      plugins: [dts()],
      output: [
        { file: `dist/${name}.d.ts`, format: 'es' },
        { file: `dist/${name}.d.cts`, format: 'es' },
      ],
    },
  ]);
}
