// The proxy as the benchmark runs it: the real composition (startApp) with a hook that
// prints when the index takes in a pod change, so the harness can measure the lag from
// the API server to the index. Arguments are the program's own flags.
//   stdout: "synced <ms> <pods>", then "<pod> <ip> <epoch ms>" per change;
//   stdin "lookup\n" prints "lookup <ns per lookup>".

import { createInterface } from 'node:readline';
import { startApp } from '../../lib/app.js';
import { parseArgs } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';

const started = Date.now();
const parsed = await parseArgs(process.argv.slice(2));
if (parsed.config === undefined) throw new Error('bad arguments');
const app = await startApp(parsed.config, createLogger({ logLevel: 'warn', logFormat: 'json' }), { host: '127.0.0.1' });
let reporting = false;
const currentIp = new Map<string, string>(); // uid -> IP, for lookups of addresses that exist
app.index.observe({
  podUpdated(pod) {
    if (pod.ips[0] !== undefined) currentIp.set(pod.uid, pod.ips[0]);
    if (reporting) process.stdout.write(`${pod.name} ${pod.ips[0] ?? '-'} ${Date.now()}\n`);
  },
  podRemoved(pod) {
    currentIp.delete(pod.uid);
  },
});
await app.source.whenSynced();
const syncedAfter = Date.now() - started;
// Measure the steady state: wait for the start-up prefetch of every role to finish.
while (app.store.pending > 0 && Date.now() - started < 120_000) await new Promise((r) => setTimeout(r, 100));
reporting = true;
process.stdout.write(`synced ${syncedAfter} ${app.index.size} ${Date.now() - started}\n`);
process.stderr.write(`  pod-index proxy: ${JSON.stringify(app.store.stats)}\n`);

/** Cost of what a request does to name its caller: IP lookup, then the pod's assignment. */
function lookupCost(): number {
  const ips = [...currentIp.values()];
  let found = 0;
  const rounds = 50;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) {
    for (const ip of ips) {
      const owner = app.index.lookup(ip)?.owner;
      if (owner != null && app.podRoles.roleOf(owner.uid) !== undefined) found++;
    }
  }
  const ns = Number(process.hrtime.bigint() - t0) / (rounds * ips.length);
  if (found === 0) throw new Error('no lookups matched');
  return ns;
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'lookup') process.stdout.write(`lookup ${lookupCost().toFixed(1)}\n`);
  if (line === 'memory') {
    const m = process.memoryUsage();
    const mb = (n: number): string => (n / 2 ** 20).toFixed(0);
    process.stdout.write(`memory rss ${mb(m.rss)}, heap used ${mb(m.heapUsed)} of ${mb(m.heapTotal)}, external ${mb(m.external)}\n`);
  }
});
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
