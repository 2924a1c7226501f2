// Bounded fuzzing of the engine over real sockets: random, mutated and smuggling-shaped
// requests in random pieces. The server must never crash or hang: every connection is
// answered with well-formed responses and closed within the timeouts, and memory and
// open connections return to where they started.

import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { generateInput } from './generate.js';
import { Random } from '../harness/random.js';
import { startServer, WireClient, describe, wellFormed } from './wire.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const CONNECTIONS = 1200;
const CONCURRENCY = 48;
const SEED = Number(process.env.FUZZ_SEED ?? 7_2026);

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

t.test(`fuzz: ${CONNECTIONS} connections of hostile input (seed ${SEED})`, async (t) => {
  const { server, port } = await startServer(
    (request) => {
      const reply = (): void => request.respond(200, JSON.stringify(describe(request)), [['Content-Type', 'application/json']]);
      // Some answers come later, so pipelined input meets queued answers.
      if (request.path.length % 3 === 0) setTimeout(reply, 1);
      else reply();
    },
    { headersTimeout: 250, keepAliveTimeout: 250, lingerTimeout: 250, maxPipelined: 4 },
  );
  t.teardown(() => server.close());
  const random = new Random(SEED);

  // Warm up the code paths, so the baseline already holds compiled code and pools.
  for (let n = 0; n < 20; n++) await oneConnection(port, generateInput(random), random);
  const baseline = heapAfterGc();

  let next = 0;
  const failures: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < CONNECTIONS && failures.length === 0) {
      const n = next++;
      const input = generateInput(random);
      const problem = await oneConnection(port, input, random);
      if (problem !== null) failures.push(`connection ${n}: ${problem}; input ${JSON.stringify(input.toString('latin1')).slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  t.same(failures, [], 'every connection answered well-formed and closed');

  const deadline = Date.now() + 3000;
  while (server.connectionCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.equal(server.connectionCount, 0, 'no connection left open');
  const growth = heapAfterGc() - baseline;
  t.ok(growth < 8 * 1024 * 1024, `heap grew ${(growth / 1024).toFixed(0)} KiB over ${CONNECTIONS} connections`);
  t.ok(server.stats.requests > 0 && server.stats.refused > 0, `${server.stats.requests} requests served, ${server.stats.refused} refused`);
});

async function oneConnection(port: number, input: Buffer, random: Random): Promise<string | null> {
  const client = await WireClient.open(port);
  try {
    let offset = 0;
    while (offset < input.length && !client.closed) {
      const size = 1 + random.int(input.length);
      client.write(input.subarray(offset, offset + size));
      offset += size;
      if (random.int(2) === 0) await yieldToLoop();
    }
    if (!(await client.closedWithin(3000))) return 'not closed within 3 s';
    if (!wellFormed(client.unread)) return `malformed output ${JSON.stringify(client.unread.toString('latin1').slice(0, 200))}`;
    return null;
  } finally {
    client.destroy();
  }
}
