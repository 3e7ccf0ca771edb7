// dist/ for the npm tarball (see scripts/rollup-package.mjs): the contract and the testing kit.
import { packageConfig } from '../../scripts/rollup-package.mjs';

export default packageConfig(import.meta.url, { index: 'src/index.ts', testing: 'src/testing.ts' });
