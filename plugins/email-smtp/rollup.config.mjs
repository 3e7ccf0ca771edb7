// dist/ for the npm tarball (see scripts/rollup-package.mjs); @cairn/plugin-api and zod stay peer imports.
import { packageConfig } from '../../scripts/rollup-package.mjs';

export default packageConfig(import.meta.url, { index: 'index.ts' });
