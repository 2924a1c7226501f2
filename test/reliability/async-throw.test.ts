// Throws after an await, while legitimate pods keep being served within 1 s: one error
// boundary for every route that awaits. A throw in the continuation after an await
// (caller resolution, a credential fetch under way, the pass-through with the node's
// token) ends that request with 500 and reaches onHandlerError (the log); it never
// becomes an unhandled rejection, which would end the process for every pod on the node.
//
// No input can make the built program throw there (that would be a bug), so the program
// is composed in this process from its real parts, as lib/app.ts composes them (pods
// file, index, role assignment, credential store, callers, upstream, router, engine),
// with moto as STS and as the metadata service. The throw is injected where no real part
// can produce one on demand: for requests from the attacker's addresses, the first answer
// sent after the route has awaited throws, as a bug in any continuation would. A fetch
// under way comes from StsFaultInjector (a named fault injector in front of moto)
// holding STS calls for 2 s.

import t from 'tap';
import { podRolesFor, storeAt } from '../pods/fixtures.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpServer, type Request } from '../../lib/http/index.js';
import { CredentialAnswerStats, createRouter } from '../../lib/imds/router.js';
import { TokenRegistry } from '../../lib/imds/tokens.js';
import { CallerResolver } from '../../lib/pods/callers.js';
import { PodIndex } from '../../lib/pods/pod-index.js';
import { PodsFileSource } from '../../lib/pods/pods-file.js';
import { MetadataUpstream } from '../../lib/upstream/metadata.js';
import { MotoServer } from '../harness/moto.js';
import { get } from '../harness/pod-client.js';
import { StsFaultInjector } from '../harness/sts-faults.js';
import { credentialsFor, LegitPods, LISTING, podsFileText, type Pod } from './program.js';

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
process.on('unhandledRejection', onUnhandled);
t.teardown(() => process.off('unhandledRejection', onUnhandled));

const PODS: Pod[] = [
  { name: 'orders', ip: '127.0.0.31', role: 'orders-api' },
  { name: 'billing', ip: '127.0.0.32', role: 'billing-api' },
];
/** A pod added during the run, whose first fetch is held by the fault injector. */
const LATE = {
  kind: 'Pod',
  metadata: { name: 'late', namespace: 'apps', uid: 'late', annotations: { 'iam.amazonaws.com/role': 'late-role' } },
  status: { phase: 'Running', podIP: '127.0.8.2' },
};
const ATTACKERS = '127.0.8.';

const moto = await MotoServer.start();
t.teardown(() => moto.stop());
const sts = await StsFaultInjector.start({ host: '127.0.0.1', port: moto.port });
t.teardown(() => sts.close());
const dir = mkdtempSync(join(tmpdir(), 'k2i-async-throw-'));
const podsFile = join(dir, 'pods.json');
writeFileSync(podsFile, podsFileText(PODS));

const store = storeAt(sts.endpoint);
t.teardown(() => store.close());
const index = new PodIndex();
const assignment = podRolesFor(store, index);
const source = new PodsFileSource(
  podsFile,
  index,
  assignment,
  { role: 'iam.amazonaws.com/role', externalId: 'iam.amazonaws.com/external-id' },
  null,
  () => undefined,
);
t.teardown(() => source.stop());
await source.whenSynced();
const upstream = new MetadataUpstream(`127.0.0.1:${moto.port}`);
t.teardown(() => upstream.close());
const router = createRouter(
  {
    unavailable: () => null,
    credentialsUnready: () => null,
    callers: new CallerResolver(index, { waitMs: 200, liveClaims: null, resolveDuplicates: false }),
    podRoles: assignment,
    demand: (entry) => store.demand(entry),
    upstream,
    tokens: new TokenRegistry(),
    stats: new CredentialAnswerStats(),
  },
  { allowRoute: null, imdsv2Required: false, hostIp: '127.0.0.1', debug: false, version: 'test' },
);

const reported: Array<{ path: string; message: string }> = [];
const server = new HttpServer(
  (request: Request) => {
    if (!request.remoteAddress.startsWith(ATTACKERS)) return router(request);
    // The attacker's requests throw on their first answer after the route has awaited.
    const send = request.send.bind(request);
    let synchronous = true;
    request.send = (answer) => {
      if (synchronous) return send(answer);
      request.send = send;
      throw new Error(`injected after an await on ${request.path}`);
    };
    router(request);
    synchronous = false;
  },
  {},
  { onHandlerError: (error, request) => reported.push({ path: request.path, message: (error as Error).message }) },
);
const { port } = await server.listen(0, '127.0.0.1');
t.teardown(() => server.close(0));

const keys = new Map<string, string>();
for (const pod of PODS) {
  const answer = await credentialsFor(port, pod, 5000);
  if (!answer.ok) throw new Error(`${pod.name} has no credentials: ${answer.problem}`);
  keys.set(pod.ip, answer.accessKeyId);
}
const legit = new LegitPods(port, PODS, keys);

const CASES: Array<{ await: string; path: string; from: string; token?: boolean; before?: () => Promise<void> }> = [
  { await: 'caller resolution (an address no pod holds yet)', path: LISTING, from: `${ATTACKERS}9` },
  {
    await: 'a credential fetch under way',
    path: `${LISTING}late-role`,
    from: LATE.status.podIP,
    before: async () => {
      sts.mode = 'delay';
      writeFileSync(podsFile, podsFileText(PODS, [LATE]));
      while (index.lookup(LATE.status.podIP) === undefined) await sleep(20);
    },
  },
  { await: 'the pass-through', path: '/latest/meta-data/instance-id', from: `${ATTACKERS}9` },
  { await: 'the pass-through with the node’s token', path: '/latest/meta-data/placement/region', from: `${ATTACKERS}9`, token: true },
];

for (const c of CASES) {
  t.test(`a throw after ${c.await} ends the request with 500 and a log line, never an unhandled rejection; pods are served`, async (t) => {
    await c.before?.();
    legit.start();
    const before = reported.length;
    // Together, so all of them meet the await (a fetch under way lasts 2 s); from their
    // own addresses where the address does not matter, so no per-address bound refuses one first.
    const from = (n: number): string => (c.from === LATE.status.podIP ? c.from : `${ATTACKERS}${10 + n}`);
    const answers = await Promise.all(
      Array.from({ length: 20 }, async (_, n) => {
        const token =
          c.token === true ? (await get(port, from(n), '/latest/api/token', 1000, { 'x-aws-ec2-metadata-token-ttl-seconds': '60' }, 'PUT')).body : null;
        return get(port, from(n), c.path, 3000, token === null ? {} : { 'x-aws-ec2-metadata-token': token });
      }),
    );
    const statuses = answers.map((a) => a.status);
    sts.mode = 'pass';
    const pods = await legit.stop();
    t.same([...new Set(statuses)], [500], 'every injected throw answered 500');
    t.equal(reported.length - before, 20, 'each reported to onHandlerError');
    t.match(reported.at(-1), { message: `injected after an await on ${c.path}` });
    await new Promise((resolve) => setImmediate(resolve));
    t.same(unhandled, [], 'no unhandled rejection');
    t.same(pods.failures.slice(0, 5), [], `every legitimate fetch got its own credentials within 1 s (${pods.requests} fetches, slowest ${pods.maxMs} ms)`);
  });
}
