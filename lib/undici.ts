// undici's Pool and its request API, without the rest of undici. The package's index
// also loads fetch, WebSocket, the cache, mock and proxy layers, which the proxy never
// uses and which cost 11 MB of RSS (benchmarks/RESULTS.md, memory by component): here
// are the two modules that matter, wired as the index wires them. undici is pinned
// (package.json); test/footprint.test.ts checks that the full index stays unloaded and
// that this Pool answers.

import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const require = createRequire(import.meta.url);
const dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
Object.assign(dispatcher.prototype, require('undici/lib/api/index.js') as object);

export const Pool = require('undici/lib/dispatcher/pool.js') as typeof Undici.Pool;
export type Pool = Undici.Pool;
