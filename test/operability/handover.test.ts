// A DaemonSet rollout on one node, with the built program: the proxy stopped as the
// kubelet stops it (SIGTERM) leaves its credentials in --handover-file, and the next
// proxy serves every pod the same credentials at once, with no STS call (real STS
// emulator behind the counting fault injector, in pass mode). A proxy that is killed
// leaves nothing, and its successor fetches from STS as before.

import t from 'tap';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MotoServer } from '../harness/moto.js';
import { StsFaultInjector } from '../harness/sts-faults.js';
import { credentialsFor, type Pod, startProgram } from '../reliability/program.js';

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

t.test('a restarted proxy serves what its predecessor handed over, with no STS call; after a crash it fetches again', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const sts = await StsFaultInjector.start({ host: '127.0.0.1', port: moto.port });
  t.teardown(() => sts.close());
  const dir = mkdtempSync(join(tmpdir(), 'k2i-handover-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'run', 'kube2iam', 'handover.json');
  const flags = ['--handover-file', file, '--log-level', 'info'];

  const first = await startProgram(PODS, sts.endpoint, '127.0.0.1:9', flags);
  const before = await keysOf(first.port);
  const fetched = sts.calls.length;
  t.ok(fetched >= 2, `the first proxy fetched its keys (${fetched} calls)`);
  t.equal(await first.proc.stop(), 0);
  t.equal(statSync(file).mode & 0o777, 0o600, 'left for this user only');
  t.match(first.proc.log(), /left 3 credentials for the next proxy/);

  const second = await startProgram(PODS, sts.endpoint, '127.0.0.1:9', flags);
  t.same(await keysOf(second.port), before, "every pod gets the credentials it had, from the predecessor's handover");
  t.equal(sts.calls.length, fetched, 'no STS call');
  t.notOk(existsSync(file), 'the file is deleted once taken');
  t.match(second.proc.log(), /took over 3 credentials from the previous proxy/);
  await second.proc.kill();

  t.notOk(existsSync(file), 'a killed proxy leaves nothing');
  const third = await startProgram(PODS, sts.endpoint, '127.0.0.1:9', flags);
  t.teardown(() => third.proc.stop());
  const after = await keysOf(third.port);
  t.ok(sts.calls.length > fetched, 'its successor fetches from STS');
  t.not(after[0], before[0]);
  t.match(third.proc.log(), /no credentials handed over/);
});

t.test('a handover file the proxy could not have written is passed over with a warning; credentials come from STS', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  const dir = mkdtempSync(join(tmpdir(), 'k2i-handover-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'handover.json');
  writeFileSync(file, '{"version":1,"credentials":[]}', { mode: 0o644 });
  const program = await startProgram(PODS, moto.endpoint, '127.0.0.1:9', ['--handover-file', file, '--log-level', 'info']);
  t.teardown(() => program.proc.stop());
  t.equal((await keysOf(program.port)).length, 3);
  t.match(program.proc.log(), /credentials handed over not used: others may read or write it \(mode 644/);
  t.ok(existsSync(file), 'left in place');
});
