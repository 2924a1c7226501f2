// The metadata DNAT rule: its arguments and validation, pure; then installed, found again,
// used by a pod and removed inside a node namespace, with the test's own namespace untouched.

import t, { type Test } from 'tap';
import { runProgram, type CommandRunner } from '../../lib/node/commands.js';
import { hasNetAdmin } from '../../lib/node/host.js';
import { dnatRuleArgs, IptablesError, MetadataDnatRule, nodeIptables, type DnatRuleSpec, type HostView } from '../../lib/node/iptables.js';
import { createNodeTopology, METADATA_IP, type NodeTopology } from '../harness/netns.js';
import { run, TestProcess } from '../harness/processes.js';
import { nth } from '../harness/nth.js';

const APP_PORT = 8181;
const spec = (overrides: Partial<DnatRuleSpec> = {}): DnatRuleSpec => ({
  metadataAddr: METADATA_IP,
  hostInterface: 'cni0',
  hostIp: '10.200.0.1',
  appPort: APP_PORT,
  ...overrides,
});
const target = ['-j', 'DNAT', '--to-destination', `10.200.0.1:${APP_PORT}`];

t.test("arguments for a plain interface match kube2iam's rule", async (t) => {
  t.same(dnatRuleArgs(spec()), ['-d', METADATA_IP, '-p', 'tcp', '--dport', '80', '-i', 'cni0', ...target]);
});

t.test('a + wildcard passes through, and !name becomes ! -i name', async (t) => {
  t.same(dnatRuleArgs(spec({ hostInterface: 'cali+' })).slice(6, 8), ['-i', 'cali+']);
  t.same(dnatRuleArgs(spec({ hostInterface: '!eth0' })).slice(6, 9), ['!', '-i', 'eth0']);
});

t.test('a host:port metadata address keeps the host and still matches port 80', async (t) => {
  t.same(dnatRuleArgs(spec({ metadataAddr: '169.254.169.254:8080' })).slice(0, 6), ['-d', METADATA_IP, '-p', 'tcp', '--dport', '80']);
});

t.test('invalid inputs are refused with a one-line IptablesError naming the value', async (t) => {
  const refused = (overrides: Partial<DnatRuleSpec>, message: RegExp, why: string): void => {
    t.throws(() => dnatRuleArgs(spec(overrides)), { name: 'IptablesError', message }, why);
    t.throws(() => new MetadataDnatRule(spec(overrides)), IptablesError, `${why}, from the constructor`);
  };
  refused({ hostIp: '10.200.0' }, /^host IP "10\.200\.0" is not an IPv4 address$/, 'partial host IP');
  refused({ hostIp: 'fd00::1' }, /^host IP "fd00::1" is not an IPv4 address$/, 'IPv6 host IP');
  refused({ metadataAddr: 'metadata.local:80' }, /^metadata address "metadata\.local:80" is not an IPv4 address/, 'metadata host name');
  refused({ metadataAddr: '169.254.169.254:http' }, /^metadata address "169\.254\.169\.254:http"/, 'named metadata port');
  for (const port of [0, 65536, 80.5, Number.NaN]) {
    refused({ appPort: port }, new RegExp(`^app port ${port} is not a port number \\(1-65535\\)$`), `app port ${port}`);
  }
  for (const name of ['', '!', 'abcdefghijklmnop', 'eth 0', 'a/b', '!\teth0', '..', '!.']) {
    refused({ hostInterface: name }, /^host interface ".*" is not a valid interface name \(1-15 characters/, `interface ${JSON.stringify(name)}`);
  }
  t.doesNotThrow(() => dnatRuleArgs(spec({ hostInterface: '!abcdefghijklmno' })), 'the 15-character limit applies after !');
});

t.test('describe() prints the rule as an iptables command for the log', async (t) => {
  t.equal(
    new MetadataDnatRule(spec({ hostInterface: '!eth0' })).describe(),
    `iptables -t nat -A PREROUTING -d ${METADATA_IP} -p tcp --dport 80 ! -i eth0 -j DNAT --to-destination 10.200.0.1:${APP_PORT}`,
  );
  t.match(new MetadataDnatRule(spec(), { iptables: 'iptables-legacy' }).describe(), /^iptables-legacy -t nat -A PREROUTING /);
});

/** A node with a cni0 and an eth0, seen by a process that holds NET_ADMIN. */
const HOST: HostView = { interfaces: () => ['cni0', 'eth0', 'lo'], hasNetAdmin: () => true };

/** A runner that records calls and answers `-C` with `checkCode`. */
function fakeRunner(checkCode: number, checkStderr = ''): { runner: CommandRunner; calls: string[][] } {
  const calls: string[][] = [];
  const runner: CommandRunner = async (command, args) => {
    calls.push([command, ...args]);
    return args.includes('-C') ? { code: checkCode, stdout: '', stderr: checkStderr } : { code: 0, stdout: '', stderr: '' };
  };
  return { runner, calls };
}

t.test('every iptables call waits 5 s for the xtables lock, with the chosen binary', async (t) => {
  const { runner, calls } = fakeRunner(1);
  t.equal(await new MetadataDnatRule(spec(), { runner, iptables: 'iptables-legacy', host: HOST }).ensure(), 'added');
  const iptablesCalls = calls.filter(([command]) => command === 'iptables-legacy');
  t.same(
    iptablesCalls.map((c) => c.slice(1, 6)),
    [
      ['-w', '5', '-t', 'nat', '-C'],
      ['-w', '5', '-t', 'nat', '-A'],
    ],
  );
});

t.test('only exit 1 from -C means absent: a lock timeout fails ensure() without appending', async (t) => {
  const { runner, calls } = fakeRunner(4, 'Another app is currently holding the xtables lock. Stopped waiting after 5s.\n');
  await t.rejects(new MetadataDnatRule(spec(), { runner, iptables: 'iptables', host: HOST }).ensure(), {
    name: 'IptablesError',
    message: /^iptables -C of the metadata DNAT rule failed \(exit 4\): Another app is currently holding the xtables lock/,
  });
  t.notOk(
    calls.some((c) => c.includes('-A')),
    'no -A after a failed check',
  );
});

t.test('preflight: a named interface must be one the node has; a wildcard is not looked up; ! is looked up without it', async (t) => {
  let lookups = 0;
  const host: HostView = {
    interfaces: () => {
      lookups++;
      return ['cni0', 'eth0', 'lo'];
    },
    hasNetAdmin: () => true,
  };
  t.doesNotThrow(() => new MetadataDnatRule(spec({ hostInterface: 'veth+' }), { host }).preflight());
  t.equal(lookups, 0, 'no lookup for veth+');
  t.doesNotThrow(() => new MetadataDnatRule(spec({ hostInterface: '!eth0' }), { host }).preflight());
  t.throws(() => new MetadataDnatRule(spec({ hostInterface: 'eni0' }), { host }).preflight(), {
    name: 'IptablesError',
    message:
      'host interface "eni0" not found on this node (it has: cni0, eth0, lo): set --host-interface to the interface pod traffic arrives on, or a wildcard such as eni+ or cali+',
  });
  t.throws(() => new MetadataDnatRule(spec({ hostInterface: '!eni0' }), { host }).preflight(), { message: /^host interface "eni0" not found/ });
  const noSysfs: HostView = {
    interfaces: () => {
      throw new Error("ENOENT: no such file or directory, scandir '/sys/class/net'");
    },
    hasNetAdmin: () => true,
  };
  t.throws(() => new MetadataDnatRule(spec(), { host: noSysfs }).preflight(), {
    message: /^cannot list the node's interfaces to check --host-interface "cni0" \(ENOENT.*\): mount sysfs at \/sys/,
  });
});

t.test('preflight: without NET_ADMIN the start is refused with one line saying what to change, before any iptables call', async (t) => {
  const { runner, calls } = fakeRunner(1);
  const rule = new MetadataDnatRule(spec({ hostInterface: 'eni+' }), { runner, host: { interfaces: () => [], hasNetAdmin: () => false } });
  const message =
    /^--iptables needs the NET_ADMIN capability, which this process \(uid \d+\) does not have: run the container as root \(runAsUser: 0\) with the capabilities NET_ADMIN and NET_RAW, or privileged: true; or install the DNAT rule on the node and drop --iptables$/;
  t.throws(() => rule.preflight(), { name: 'IptablesError', message });
  t.same(calls, [], 'nothing ran');
});

t.test('hasNetAdmin reads bit 12 of the effective capability set', async (t) => {
  const status = (capEff: string): string =>
    `Name:\tnode\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`;
  t.equal(hasNetAdmin(status('000001ffffffffff')), true, 'root, privileged');
  t.equal(hasNetAdmin(status('0000000000003000')), true, 'NET_ADMIN and NET_RAW only (our DaemonSet)');
  t.equal(hasNetAdmin(status('0000000000002000')), false, 'NET_RAW only');
  t.equal(hasNetAdmin(status('00000000a80425fb')), false, "a container runtime's default set, without NET_ADMIN");
  t.equal(hasNetAdmin(status('0000000000000000')), false, 'non-root');
  t.equal(hasNetAdmin('Name:\tnode\n'), false, 'no CapEff line');
});

t.test('iptables refusing for lack of privileges gets the same hint', async (t) => {
  const runner: CommandRunner = async () => ({
    code: 4,
    stdout: '',
    stderr: 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n',
  });
  await t.rejects(new MetadataDnatRule(spec(), { runner, iptables: 'iptables-nft', host: HOST }).ensure(), {
    message: /^iptables-nft -C of the metadata DNAT rule failed \(exit 4\): .*Permission denied \(you must be root\): run the container as root/,
  });
});

t.test('runProgram returns a non-zero exit with its output and rejects only for a missing program', async (t) => {
  t.same(await runProgram('sh', ['-c', 'echo out; echo err >&2; exit 3']), { code: 3, stdout: 'out\n', stderr: 'err\n' });
  await t.rejects(runProgram('k2i-no-such-program', []), { name: 'CommandError', message: 'k2i-no-such-program not found on PATH: the image must contain it' });
});

// In network namespaces: the rule is installed in the node namespace through a runner that
// prefixes every command, as `ip netns exec` would on a node.

async function nodeTopology(t: Test): Promise<NodeTopology> {
  const topology = await createNodeTopology(1);
  t.teardown(() => topology.delete());
  return topology;
}

const inNode =
  (topology: NodeTopology): CommandRunner =>
  (command, args) =>
    runProgram('ip', ['netns', 'exec', topology.node.name, command, ...args]);

/** The node namespace as the program there sees it (its sysfs), holding NET_ADMIN as root does. */
async function nodeHost(topology: NodeTopology): Promise<HostView> {
  const links = await topology.node.ip('-o', 'link', 'show');
  const names = [...links.matchAll(/^\d+: ([^:@]+)[:@]/gm)].map((m) => m[1] as string).sort();
  return { interfaces: () => names, hasNetAdmin: () => true };
}

async function natRules(topology: NodeTopology): Promise<string[]> {
  const rules = await topology.node.exec('iptables', ['-t', 'nat', '-S', 'PREROUTING']);
  return rules.split('\n').filter((line) => line.startsWith('-A '));
}

const shown = (iface: string): string => `-A PREROUTING -d ${METADATA_IP}/32 ${iface} -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.200.0.1:${APP_PORT}`;

t.test('ensure() adds exactly one rule, and a second ensure() (a restart) finds it present', async (t) => {
  const topology = await nodeTopology(t);
  const rule = new MetadataDnatRule(spec(), { runner: inNode(topology), host: await nodeHost(topology) });
  t.equal(await rule.ensure(), 'added');
  t.same(await natRules(topology), [shown('-i cni0')]);
  t.equal(await new MetadataDnatRule(spec(), { runner: inNode(topology), host: await nodeHost(topology) }).ensure(), 'present');
  t.same(await natRules(topology), [shown('-i cni0')], 'still one rule');
});

t.test('the wildcard veth+ and the negation !lo are installed as iptables shows them', async (t) => {
  const topology = await nodeTopology(t);
  t.equal(await new MetadataDnatRule(spec({ hostInterface: 'veth+' }), { runner: inNode(topology), host: await nodeHost(topology) }).ensure(), 'added');
  t.equal(await new MetadataDnatRule(spec({ hostInterface: '!lo' }), { runner: inNode(topology), host: await nodeHost(topology) }).ensure(), 'added');
  t.same(await natRules(topology), [shown('-i veth+'), shown('! -i lo')]);
});

t.test('a missing interface is refused, naming it and what the node has, and nothing is installed', async (t) => {
  const topology = await nodeTopology(t);
  const host = await nodeHost(topology);
  for (const hostInterface of ['nosuch0', '!nosuch0']) {
    t.throws(
      () => new MetadataDnatRule(spec({ hostInterface }), { runner: inNode(topology), host }).preflight(),
      {
        name: 'IptablesError',
        message: /^host interface "nosuch0" not found on this node \(it has: cni0, lo, veth0\)/,
      },
      hostInterface,
    );
  }
  t.same(await natRules(topology), []);
});

/**
 * An HTTP server in the node namespace on the DNAT target, answering with the client's
 * address and logging `<address> <path>` for each request it receives.
 */
async function startEcho(t: Test, topology: NodeTopology): Promise<TestProcess> {
  const script = `require('node:http').createServer((req, res) => {
    console.log(req.socket.remoteAddress + ' ' + req.url);
    res.end(req.socket.remoteAddress);
  }).listen(${APP_PORT}, '${topology.nodeIp}');`;
  const server = await TestProcess.start('ip', ['netns', 'exec', topology.node.name, process.execPath, '-e', script], {
    name: 'echo',
    env: { ...process.env, NODE_OPTIONS: '' }, // without tap's loaders: a plain script starts faster
    ready: async () => (await topology.node.exec('curl', ['-sf', `http://${topology.nodeIp}:${APP_PORT}/ready`]).catch(() => '')) !== '',
  });
  t.teardown(() => server.stop());
  return server;
}

/** What the pod's request to the metadata address got back, or null when it failed. */
const podRequest = (topology: NodeTopology, path: string): Promise<string | null> =>
  nth(topology.pods, 0)
    .ns.exec('curl', ['-sf', '--max-time', '3', `http://${METADATA_IP}${path}`])
    .catch(() => null);

t.test('a pod reaches the server only once the rule is in, and is seen by its own IP', async (t) => {
  const topology = await nodeTopology(t);
  const server = await startEcho(t, topology);
  t.equal(await podRequest(topology, '/before'), null, 'no rule: the request fails');
  t.notMatch(server.log(), '/before', 'and never reached the server');
  await new MetadataDnatRule(spec(), { runner: inNode(topology), host: await nodeHost(topology) }).ensure();
  t.equal(await podRequest(topology, '/latest/meta-data/'), '10.200.0.11', 'the answer names the pod');
  t.match(server.log(), '10.200.0.11 /latest/meta-data/\n', "the server saw the pod's address");
});

t.test('remove() deletes the rule and duplicates from older runs, after which pods no longer reach the server', async (t) => {
  const topology = await nodeTopology(t);
  const server = await startEcho(t, topology);
  const rule = new MetadataDnatRule(spec(), { runner: inNode(topology), host: await nodeHost(topology) });
  await rule.ensure();
  await topology.node.exec('iptables', ['-t', 'nat', '-A', 'PREROUTING', ...dnatRuleArgs(spec())]);
  t.equal((await natRules(topology)).length, 2, 'a duplicate, as an older run could leave');
  t.equal(await podRequest(topology, '/with-rule'), '10.200.0.11');
  t.equal(await rule.remove(), 2);
  t.same(await natRules(topology), []);
  t.equal(await podRequest(topology, '/after-remove'), null, 'the request fails');
  t.notMatch(server.log(), '/after-remove', 'and never reached the server');
  t.equal(await rule.remove(), 0, 'removing again finds nothing');
});

t.test('the rule goes to the backend the node already uses: legacy when it holds the rules, else nft', async (t) => {
  const topology = await nodeTopology(t);
  t.equal(await nodeIptables(inNode(topology)), 'iptables-nft', 'a node with no rules: nft, Debian’s default');
  // A node whose kube-proxy writes through iptables-legacy.
  for (const chain of ['KUBE-SERVICES', 'KUBE-POSTROUTING']) await topology.node.exec('iptables-legacy', ['-t', 'nat', '-N', chain]);
  await topology.node.exec('iptables-legacy', ['-t', 'nat', '-A', 'PREROUTING', '-j', 'KUBE-SERVICES']);
  t.equal(await nodeIptables(inNode(topology)), 'iptables-legacy');
  const rule = new MetadataDnatRule(spec(), { runner: inNode(topology), host: await nodeHost(topology) });
  t.equal(await rule.ensure(), 'added');
  t.match(rule.describe(), /^iptables-legacy /);
  const legacy = await topology.node.exec('iptables-legacy', ['-t', 'nat', '-S', 'PREROUTING']);
  t.ok(legacy.includes(shown('-i cni0')), 'beside the node’s own rules');
  t.same(await natRules(topology), [], 'not in the nft tables');
  t.equal(await rule.remove(), 1);
});

t.test('the namespace the tests run in has no DNAT rule: everything went to node namespaces', async (t) => {
  t.notMatch(await run('iptables', ['-t', 'nat', '-S']), /DNAT|169\.254\.169\.254/);
});
