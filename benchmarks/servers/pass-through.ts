// A proxy that only passes requests through to the metadata service: the engine and the
// upstream pool, nothing else. The DNAT benchmark's baseline for the full proxy.
//   node pass-through.js LISTEN_HOST METADATA_ADDR PORT

import { HttpServer } from '../../lib/http/index.js';
import { MetadataUpstream } from '../../lib/upstream/metadata.js';

const [host, metadataAddr, port] = process.argv.slice(2);
// No per-address share: the baseline is one pod's load, through the pool alone.
const upstream = new MetadataUpstream(metadataAddr as string, { perClient: 1_000_000 });
const server = new HttpServer((request) => upstream.forward(request, false));
await server.listen(Number(port), host);
process.stdout.write('ready\n');
