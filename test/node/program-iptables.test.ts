// The built program's --iptables in a node network namespace: the rule appears once the
// port is open, stays after exit by default (fail closed), goes with
// --iptables-remove-on-exit, and a missing interface stops the start with one line.

import t from 'tap';
import { curlIn } from '../harness/curl.js';
import { fatalMessage } from '../harness/log-lines.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeTopology } from '../harness/netns.js';
import { execute, TestProcess } from '../harness/processes.js';

const PROGRAM = new URL('../../dist/bin/kube2iam.js', import.meta.url).pathname;
const topology = await createNodeTopology(1);
t.teardown(() => topology.delete());
const node = topology.node;

const dir = mkdtempSync(join(tmpdir(), 'k2i-program-iptables-'));
const podsFile = join(dir, 'pods.json');
writeFileSync(podsFile, JSON.stringify({ kind: 'List', items: [] }));

const FLAGS = [
  '--pods-file',
  podsFile,
  '--metadata-addr',
  '169.254.169.254',
  '--stats-interval',
  '0',
  '--iptables',
  '--host-ip',
  topology.nodeIp,
  '--app-port',
  '8181',
];
// `env -u NODE_OPTIONS`: without tap's loaders, as the program runs in its image.
const start = (extra: string[]): Promise<TestProcess> =>
  TestProcess.start('ip', ['netns', 'exec', node.name, 'env', '-u', 'NODE_OPTIONS', process.execPath, PROGRAM, ...FLAGS, ...extra], {
    name: 'kube2iam',
    ready: async () => (await serving()) && (await rules()).length === 1,
  });

async function serving(): Promise<boolean> {
  return (await curlIn(['ip', 'netns', 'exec', node.name], 'http://127.0.0.1:8181/healthz', { timeoutS: 1 })).status === 200;
}

async function rules(): Promise<string[]> {
  const out = await node.exec('iptables', ['-w', '5', '-t', 'nat', '-S', 'PREROUTING']);
  return out.split('\n').filter((line) => line.includes('DNAT'));
}

t.test('the rule stays after exit by default, so pods cannot reach the node’s credentials', async (t) => {
  const proc = await start(['--host-interface', 'cni0']);
  t.same(await rules(), [`-A PREROUTING -d 169.254.169.254/32 -i cni0 -p tcp -m tcp --dport 80 -j DNAT --to-destination ${topology.nodeIp}:8181`]);
  t.equal(await proc.stop(), 0);
  t.equal((await rules()).length, 1, 'still there');
  const again = await start(['--host-interface', 'cni0']);
  t.equal((await rules()).length, 1, 'a restart adds no second copy');
  t.match(again.log(), /outcome=present/);
  t.equal(await again.stop(), 0);
  await node.exec('iptables', ['-w', '5', '-t', 'nat', '-F', 'PREROUTING']);
});

t.test('--iptables-remove-on-exit deletes it on SIGTERM', async (t) => {
  const proc = await start(['--host-interface', 'cni0', '--iptables-remove-on-exit']);
  t.equal(await proc.stop(), 0);
  t.same(await rules(), []);
});

t.test('an interface that does not exist stops the start with a one-line error, exit 1', async (t) => {
  const result = await execute('ip', [
    'netns',
    'exec',
    node.name,
    'env',
    '-u',
    'NODE_OPTIONS',
    process.execPath,
    PROGRAM,
    ...FLAGS,
    '--host-interface',
    'nosuch0',
  ]);
  t.equal(result.code, 1);
  t.match(fatalMessage(result.stderr), /^cannot start: host interface "nosuch0" not found/);
  t.same(await rules(), []);
});
