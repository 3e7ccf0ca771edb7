// The console: one entry (the shell, sign-in and the live events page) and one chunk per other page, loaded
// when first opened. index.html is written last, naming the hashed entry and stylesheet, so assets can be
// cached for good and only index.html is revalidated.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import nodeResolve from '@rollup/plugin-node-resolve';
import terser from '@rollup/plugin-terser';
import esbuild from 'rollup-plugin-esbuild';

const css = () =>
  ['src/style.css', '../../node_modules/uplot/dist/uPlot.min.css']
    .map((f) => readFileSync(new URL(f, import.meta.url), 'utf8'))
    .join('\n');

function indexHtml() {
  return {
    name: 'cairn-console-index',
    generateBundle(_options, bundle) {
      const entry = Object.values(bundle).find((c) => c.type === 'chunk' && c.isEntry);
      const style = css();
      const styleName = `assets/style-${createHash('sha256').update(style).digest('hex').slice(0, 10)}.css`;
      this.emitFile({ type: 'asset', fileName: styleName, source: style });
      const preload = entry.imports.map((f) => `<link rel="modulepreload" href="/console/${f}">`).join('');
      this.emitFile({
        type: 'asset',
        fileName: 'index.html',
        source: `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Cairn console</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/console/${styleName}">${preload}<script type="module" src="/console/${entry.fileName}"></script></head><body><div id="app"></div></body></html>\n`,
      });
    },
  };
}

export default {
  input: 'src/main.tsx',
  output: {
    dir: 'dist',
    format: 'es',
    entryFileNames: 'assets/main-[hash].js',
    chunkFileNames: 'assets/[name]-[hash].js',
    plugins: [terser({ ecma: 2020, format: { comments: false } })],
  },
  plugins: [
    nodeResolve({ browser: true }),
    esbuild({ target: 'es2022', jsx: 'automatic', jsxImportSource: 'preact', minify: false }),
    indexHtml(),
  ],
};
