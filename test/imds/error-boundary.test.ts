// One error boundary for every route that awaits: a throw in the continuation after an
// await (caller resolution, a credential fetch under way, the pass-through with the
// node's token) ends that request with 500 and reaches onHandlerError (the log); it
// never becomes an unhandled rejection, which would end the process for every pod.
//
// The router is composed from the program's real parts as lib/app.ts composes it (pods
// file, index, role assignment, credential store, moto as the metadata service). The
// throw is injected where no real part can produce one on demand: the first answer a
// request sends after its await throws, as a bug in any continuation would. STS is a
// hand-written stalling fake (named so): the credential wait needs a fetch that is still
// under way when the pod asks.

import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialStore } from '../../lib/credentials/store.js';
import type { AssumeRoleRequest, RoleAssumer } from '../../lib/credentials/sts.js';
import { HttpServer, type Request } from '../../lib/http/index.js';
import { CredentialAnswerStats, createRouter } from '../../lib/imds/router.js';
import { TokenRegistry } from '../../lib/imds/tokens.js';
import { CallerResolver } from '../../lib/pods/callers.js';
import { PodIndex } from '../../lib/pods/index.js';
import { RoleAssignment } from '../../lib/pods/role-assignment.js';
import { PodsFileSource } from '../../lib/pods/sources.js';
import { MetadataUpstream } from '../../lib/upstream/metadata.js';
import { MotoServer } from '../harness/moto.js';

/** A fake STS that never answers: a first fetch stays under way (no real part stalls on demand). */
class StallingSts implements RoleAssumer {
  assumeRole(_request: AssumeRoleRequest): Promise<never> {
    return new Promise(() => undefined);
  }
  close(): void {}
}

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
process.on('unhandledRejection', onUnhandled);
t.teardown(() => process.off('unhandledRejection', onUnhandled));

const moto = await MotoServer.start();
t.teardown(() => moto.stop());
const dir = mkdtempSync(join(tmpdir(), 'k2i-boundary-'));
writeFileSync(
  join(dir, 'pods.json'),
  JSON.stringify({
    kind: 'List',
    items: [{ kind: 'Pod', metadata: { name: 'app', namespace: 'default', annotations: { 'iam.amazonaws.com/role': 'app' } }, status: { phase: 'Running', podIP: '127.0.0.2' } }],
  }),
);
const store = new CredentialStore(new StallingSts(), { sessionTtlMs: 15 * 60_000, errorTtlMs: 0 });
t.teardown(() => store.close());
const index = new PodIndex();
const assignment = new RoleAssignment(store, index, { baseRoleArn: 'arn:aws:iam::123456789012:role/', defaultRoleArn: null }, { enabled: false, format: 'glob', key: '' }, { warn: () => undefined });
const source = new PodsFileSource(join(dir, 'pods.json'), index, assignment, { role: 'iam.amazonaws.com/role', externalId: 'iam.amazonaws.com/external-id' }, () => undefined);
t.teardown(() => source.stop());
await source.whenSynced();
const upstream = new MetadataUpstream(`127.0.0.1:${moto.port}`);
t.teardown(() => upstream.close());
const router = createRouter(
  { unavailable: () => null, callers: new CallerResolver(index, { waitMs: 200, liveClaims: null, resolveDuplicates: false }), assignment, upstream, tokens: new TokenRegistry(), stats: new CredentialAnswerStats() },
  { allowRoute: null, imdsv2Required: false, hostIp: '127.0.0.1', debug: false },
);

/** Requests whose path is in `inject` throw on their first send() after the route has awaited. */
const inject = new Set<string>();
const reported: Array<{ path: string; message: string }> = [];
const server = new HttpServer(
  (request: Request) => {
    if (inject.has(request.path)) {
      const send = request.send.bind(request);
      let synchronous = true;
      request.send = (answer) => {
        if (!synchronous) {
          request.send = send;
          throw new Error(`injected after an await on ${request.path}`);
        }
        send(answer);
      };
      router(request);
      synchronous = false;
      return;
    }
    router(request);
  },
  {},
  { onHandlerError: (error, request) => reported.push({ path: request.path, message: (error as Error).message }) },
);
const address = await server.listen(0, '127.0.0.1');
t.teardown(() => server.close(0));

function ask(path: string, from: string, method = 'GET', headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: address.port, path, method, headers, localAddress: from }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const CASES: Array<{ await: string; path: string; from: string; method?: string; headers?: Record<string, string> }> = [
  { await: 'caller resolution (an address no pod holds yet)', path: '/latest/meta-data/iam/security-credentials/', from: '127.0.0.9' },
  { await: 'a credential fetch under way', path: '/latest/meta-data/iam/security-credentials/app', from: '127.0.0.2' },
  { await: 'the pass-through', path: '/latest/meta-data/instance-id', from: '127.0.0.2' },
];

for (const c of CASES) {
  t.test(`a throw after ${c.await} ends the request with 500 and a log line, never an unhandled rejection`, async (t) => {
    inject.add(c.path);
    t.teardown(() => inject.delete(c.path));
    const before = reported.length;
    const answer = await ask(c.path, c.from, c.method, c.headers);
    t.same(answer, { status: 500, body: 'internal error\n' });
    t.match(reported.slice(before), [{ path: c.path, message: `injected after an await on ${c.path}` }], 'reported to onHandlerError');
    await new Promise((resolve) => setImmediate(resolve));
    t.same(unhandled, [], 'no unhandled rejection');
  });
}

t.test('without an injected throw the same routes answer normally', async (t) => {
  t.equal((await ask('/latest/meta-data/instance-id', '127.0.0.2')).status, 200);
  t.equal((await ask('/latest/meta-data/iam/security-credentials/', '127.0.0.2')).body, 'app');
});
