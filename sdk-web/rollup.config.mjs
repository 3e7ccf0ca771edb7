// Two artefacts from one source: the IIFE the copy-paste snippet loads (minified, size-budgeted) and an ESM
// build for bundlers (left readable; the app's bundler minifies it).
import { readFileSync } from 'node:fs';
import terser from '@rollup/plugin-terser';
import esbuild from 'rollup-plugin-esbuild';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

const ts = () => esbuild({ target: 'es2020', define: { __VERSION__: JSON.stringify(version) } });

export default [
  {
    input: 'src/index.ts',
    output: {
      file: 'dist/cairn.min.js',
      format: 'iife',
      plugins: [terser({ ecma: 2020, compress: { passes: 3 }, format: { comments: false } })],
    },
    plugins: [ts()],
  },
  {
    input: 'src/esm.ts',
    output: { file: 'dist/cairn.esm.js', format: 'es' },
    plugins: [ts()],
  },
];
