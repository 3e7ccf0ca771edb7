// The ESM entry (dist/cairn.esm.js) for bundlers: `import { cairn } from '@cairn/sdk-web'; cairn.init({ writeKey })`.
import { api } from './client.ts';
import type { Cairn } from './types.ts';

export type { Cairn, CairnEvent, Middleware, Options, Props, Purposes } from './types.ts';

export const cairn: Cairn = api;
