import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

// Workspace packages that publish a built dist/ (@cairn/node, @cairn/plugin-api) list their TypeScript sources under
// this export condition, so tests run against src/ without a build (tsconfig.base.json sets it for tsc too). Node-side
// tests resolve through vite's server (ssr) conditions.
const SOURCE_CONDITION = '@cairn/source';
const nodeOptions = [process.env.NODE_OPTIONS, `--conditions=${SOURCE_CONDITION}`].filter(Boolean).join(' ');

// One vitest run covers every workspace, so CI reads one total.
export default defineConfig({
  ssr: { resolve: { conditions: [SOURCE_CONDITION, ...defaultServerConditions] } },
  test: {
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', '**/.cairn/**'],
    pool: 'forks',
    // Vitest's default on a 2-core machine is one file at a time (cores - 1); most files wait on servers,
    // timers and Postgres, not on the CPU, so two at once cut the run's wall time (CAIRN_TEST_WORKERS to change).
    maxWorkers: Number(process.env.CAIRN_TEST_WORKERS) || 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Servers and workers the tests spawn with tsx resolve the same sources.
    env: { NODE_OPTIONS: nodeOptions },
  },
});
