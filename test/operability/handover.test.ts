// A DaemonSet rollout on one node, with the built program: the proxy stopped as the
// kubelet stops it (SIGTERM) leaves its credentials in --handover-file, and the next
// proxy serves every pod the same credentials at once, with one STS call, for readiness
// (real STS emulator behind the counting fault injector, in pass mode). A proxy that is
// killed leaves nothing, and its successor fetches from STS as before; one that fails to
// start gives back what it took over.

import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MotoServer } from '../harness/moto.js';
import { get } from '../harness/pod-client.js';
import { execute } from '../harness/processes.js';
import { StsFaultInjector } from '../harness/sts-faults.js';
import { credentialsFor, type Pod, programCommand, startProgram } from '../reliability/program.js';
import { CLOSED_ADDRESS } from '../harness/ports.js';

const PODS: Pod[] = [
  { name: 'web-1', ip: '127.0.0.21', role: 'web' },
  { name: 'web-2', ip: '127.0.0.22', role: 'web' },
  { name: 'batch', ip: '127.0.0.23', role: 'batch' },
];

async function keysOf(port: number): Promise<string[]> {
  const keys: string[] = [];
  for (const pod of PODS) {
    const answer = await credentialsFor(port, pod, 2_000);
    if (!answer.ok) throw new Error(`${pod.name}: ${answer.problem}`);
    keys.push(answer.accessKeyId);
  }
  return keys;
}

/** STS (moto), and where the handover file goes, in a folder of the test's. */
async function handoverRig(t: Test): Promise<{ moto: MotoServer; dir: string }> {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const dir = mkdtempSync(join(tmpdir(), 'k2i-handover-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { moto, dir };
}

/** Each pod got the credentials it had before the restart, but for the one key the new proxy renewed at once (for readiness), which may have landed already. */
function keptOver(t: Test, before: string[], after: string[], what: string): void {
  const renewed = after.filter((key, i) => key !== before[i]).length;
  t.ok(renewed <= 1, `${what}: ${PODS.length - renewed} of ${PODS.length} pods answered with the credentials they had`);
}

t.test('a restarted proxy serves what its predecessor handed over, with one STS call to show STS works; after a crash it fetches again', async (t) => {
  const { moto, dir } = await handoverRig(t);
  const sts = await StsFaultInjector.start({ host: '127.0.0.1', port: moto.port });
  t.teardown(() => sts.close());
  const file = join(dir, 'run', 'kube2iam', 'handover.json');
  // The first key's renewal (for readiness) within the window: 1 s, not the default's 10.
  const flags = ['--handover-file', file, '--log-level', 'info', '--prefetch-window', '1s'];

  const first = await startProgram(PODS, sts.endpoint, CLOSED_ADDRESS, flags);
  const before = await keysOf(first.port);
  const fetched = sts.calls.length;
  t.ok(fetched >= 2, `the first proxy fetched its keys (${fetched} calls)`);
  t.equal(await first.proc.stop(), 0);
  t.equal(statSync(file).mode & 0o777, 0o600, 'left for this user only');
  t.match(first.proc.log(), /left 3 credentials for the next proxy/);

  const second = await startProgram(PODS, sts.endpoint, CLOSED_ADDRESS, flags);
  keptOver(t, before, await keysOf(second.port), "from the predecessor's handover");
  t.notOk(existsSync(file), 'the file is deleted once taken');
  t.match(second.proc.log(), /took over 3 credentials from the previous proxy/);
  while ((await get(second.port, '127.0.0.1', '/readyz', 1000)).status !== 200) await sleep(50);
  t.equal(sts.calls.length, fetched + 1, 'one STS call: the first key a pod uses, renewed so /readyz shows STS works');
  await sleep(500);
  t.equal(sts.calls.length, fetched + 1, 'and no other');
  await second.proc.kill();

  const third = await startProgram(PODS, sts.endpoint, CLOSED_ADDRESS, flags);
  t.teardown(() => third.proc.stop());
  const after = await keysOf(third.port);
  t.ok(sts.calls.length > fetched, 'its successor fetches from STS');
  t.not(after[0], before[0]);
  t.match(third.proc.log(), /no credentials handed over/);
});

t.test('a proxy that fails to start gives back the credentials it took over', async (t) => {
  const { moto, dir } = await handoverRig(t);
  const file = join(dir, 'handover.json');
  const first = await startProgram(PODS, moto.endpoint, CLOSED_ADDRESS, ['--handover-file', file]);
  const before = await keysOf(first.port);
  await first.proc.stop();
  const left = statSync(file).size;
  // Its port is taken (the old proxy not gone yet, say): it takes over, cannot listen, exits 1.
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(first.port, resolve));
  t.teardown(() => taken.close());
  const { command, args, env } = programCommand(first.port, first.podsFile, moto.endpoint, CLOSED_ADDRESS, ['--handover-file', file, '--log-level', 'info']);
  const failed = await execute(command, args, { env, timeoutMs: 20_000 });
  t.equal(failed.code, 1, failed.stderr.slice(-500));
  t.match(failed.stderr, /took over 3 credentials[\s\S]*left 3 credentials for the next proxy/);
  t.equal(statSync(file).size, left, 'the same credentials, back in the file');
  taken.close();
  const next = await startProgram(PODS, moto.endpoint, CLOSED_ADDRESS, ['--handover-file', file]);
  t.teardown(() => next.proc.stop());
  keptOver(t, before, await keysOf(next.port), 'the proxy after it serves them');
});

t.test('a handover file the proxy could not have written is passed over with a warning; credentials come from STS', async (t) => {
  const { moto, dir } = await handoverRig(t);
  const file = join(dir, 'handover.json');
  writeFileSync(file, '{"version":1,"credentials":[]}', { mode: 0o644 });
  const program = await startProgram(PODS, moto.endpoint, CLOSED_ADDRESS, ['--handover-file', file, '--log-level', 'info']);
  t.teardown(() => program.proc.stop());
  t.equal((await keysOf(program.port)).length, 3);
  t.match(program.proc.log(), /credentials handed over not used: others may read or write it \(mode 644/);
  t.ok(existsSync(file), 'left in place');
});
