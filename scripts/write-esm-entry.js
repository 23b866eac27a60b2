// Writes dist/<entry>.mjs for each package entry point: an ES module that re-exports the CommonJS
// build by name, so `import { makeSplashMHA } from 'splash-attention'` (and the same for the
// `splash-attention/tfjs` subpath) works without a second build.
// The CommonJS file is loaded with createRequire rather than a static import: an error it throws
// while loading (the tfjs entry without @tensorflow/tfjs-core) then rejects a dynamic import()
// that can be caught; through a static import Node 20 also reports it as uncaught (nodejs/node#51603).
// Listing the tfjs entry's names loads it, so @tensorflow/tfjs-core (a devDependency) must be installed.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dist = path.join(__dirname, '..', 'dist');
for (const entry of ['index', 'tfjs']) {
  const names = Object.keys(require(path.join(dist, `${entry}.js`))).filter((n) => n !== 'default' && n !== '__esModule');
  const body = [
    "import { createRequire } from 'node:module';",
    `const cjs = createRequire(import.meta.url)('./${entry}.js');`,
    `export const { ${names.join(', ')} } = cjs;`,
    'export default cjs;',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(dist, `${entry}.mjs`), body);
}
