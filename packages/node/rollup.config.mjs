// dist/ for the npm tarball (see scripts/rollup-package.mjs). @cairn/node has no runtime dependencies: only
// Node's own modules stay imports; package.json is read for `version` only.
import { packageConfig } from '../../scripts/rollup-package.mjs';

export default packageConfig(import.meta.url);
