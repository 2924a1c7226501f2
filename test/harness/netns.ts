// Network namespaces built as on a Kubernetes node: a node namespace with the metadata
// address on its loopback, and pod namespaces wired to it by veth pairs, through a bridge
// or one link per pod as the network plugin would. Everything here lives inside the
// test's own namespaces and is deleted after.

import { run } from './processes.js';
import { runPrefix } from './environment.js';

let counter = 0;

export class NetworkNamespace {
  readonly name: string;
  private constructor(name: string) {
    this.name = name;
  }

  static async create(label: string): Promise<NetworkNamespace> {
    const name = `${runPrefix()}${label}${counter++}`;
    await run('ip', ['netns', 'add', name]);
    const ns = new NetworkNamespace(name);
    await ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** The command prefix that runs a program inside this namespace. */
  get prefix(): string[] {
    return ['ip', 'netns', 'exec', this.name];
  }

  ip(...args: string[]): Promise<string> {
    return run('ip', ['-n', this.name, ...args]);
  }

  exec(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
    return run('ip', ['netns', 'exec', this.name, command, ...args], options);
  }

  async delete(): Promise<void> {
    // Processes left inside would keep the namespace alive through their sockets.
    const pids = (await run('ip', ['netns', 'pids', this.name]).catch(() => '')).split(/\s+/).filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await run('ip', ['netns', 'del', this.name]).catch(() => undefined);
  }
}

export interface PodNetwork {
  ns: NetworkNamespace;
  ip: string;
  /** With `ipv6` (bridge wiring): the pod's IPv6 address in fd00:200::/64. */
  ip6?: string;
}

export interface NodeTopology {
  node: NetworkNamespace;
  /** The node's own address, the DNAT target. */
  nodeIp: string;
  /** What --host-interface names for pod traffic: the bridge, or the wildcard of the pods' links. */
  hostInterface: string;
  pods: PodNetwork[];
  delete(): Promise<void>;
}

/**
 * How pods are wired to the node: `bridge`, as bridge CNIs and kubenet (a `cni0` bridge
 * holding the node's address); `eni`, as the AWS VPC CNI (one veth per pod, host side
 * `eni<n>`, a /32 route to each pod, no bridge; the node's address elsewhere).
 */
export type PodWiring = 'bridge' | 'eni';

export const METADATA_IP = '169.254.169.254';

/**
 * iptables arguments for the metadata DNAT rule a node's proxy installs, to `port` on the
 * node's address: `-A` adds it, `-D` deletes it; with `source`, for that pod only.
 */
export function metadataDnat(topology: Pick<NodeTopology, 'nodeIp' | 'hostInterface'>, port: number, action: '-A' | '-D' = '-A', source?: string): string[] {
  const from = source === undefined ? [] : ['-s', source];
  const match = ['-d', METADATA_IP, '-p', 'tcp', '--dport', '80', '-i', topology.hostInterface];
  return ['-w', '5', '-t', 'nat', action, 'PREROUTING', ...from, ...match, '-j', 'DNAT', '--to-destination', `${topology.nodeIp}:${port}`];
}

/**
 * A node namespace (169.254.169.254 on loopback) and `podCount` pod namespaces at
 * 10.200.0.11, .12, ... routed through the node. With `bridge` wiring the node's address
 * is 10.200.0.1 on the bridge `cni0`; with `eni` it is 10.0.0.10 (on loopback: any local
 * address is a DNAT target) and each pod has its own link `eni<n>`. With `ipv6` (bridge
 * wiring), dual stack: the node at fd00:200::1, the pods at fd00:200::11, ::12, ...
 * (without duplicate-address detection, so the addresses work at once).
 */
export async function createNodeTopology(podCount: number, wiring: PodWiring = 'bridge', options: { ipv6?: boolean } = {}): Promise<NodeTopology> {
  const ipv6 = options.ipv6 === true;
  if (ipv6 && wiring !== 'bridge') throw new Error('IPv6 pods are wired through the bridge only');
  const created: NetworkNamespace[] = [];
  const topology: NodeTopology = {
    node: undefined as unknown as NetworkNamespace,
    nodeIp: wiring === 'bridge' ? '10.200.0.1' : '10.0.0.10',
    hostInterface: wiring === 'bridge' ? 'cni0' : 'eni+',
    pods: [],
    async delete() {
      for (const ns of created.reverse()) await ns.delete();
    },
  };
  try {
    const node = await NetworkNamespace.create('node');
    created.push(node);
    topology.node = node;
    await node.ip('addr', 'add', `${METADATA_IP}/32`, 'dev', 'lo');
    if (wiring === 'bridge') {
      await node.ip('link', 'add', 'cni0', 'type', 'bridge');
      await node.ip('addr', 'add', '10.200.0.1/24', 'dev', 'cni0');
      if (ipv6) await node.ip('-6', 'addr', 'add', 'fd00:200::1/64', 'dev', 'cni0', 'nodad');
      await node.ip('link', 'set', 'cni0', 'up');
    } else {
      await node.ip('addr', 'add', `${topology.nodeIp}/32`, 'dev', 'lo');
    }
    for (let n = 0; n < podCount; n++) {
      const pod = await NetworkNamespace.create('pod');
      created.push(pod);
      const ip = `10.200.0.${11 + n}`;
      const hostSide = wiring === 'bridge' ? `veth${n}` : `eni${n}`;
      await run('ip', ['link', 'add', hostSide, 'netns', node.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name]);
      await pod.ip('link', 'set', 'eth0', 'up');
      if (wiring === 'bridge') {
        await node.ip('link', 'set', hostSide, 'master', 'cni0', 'up');
        await pod.ip('addr', 'add', `${ip}/24`, 'dev', 'eth0');
        await pod.ip('route', 'add', 'default', 'via', '10.200.0.1');
        if (ipv6) {
          await pod.ip('-6', 'addr', 'add', `fd00:200::${11 + n}/64`, 'dev', 'eth0', 'nodad');
          await pod.ip('-6', 'route', 'add', 'default', 'via', 'fd00:200::1');
        }
      } else {
        await node.ip('link', 'set', hostSide, 'up');
        await node.ip('route', 'add', `${ip}/32`, 'dev', hostSide);
        await pod.ip('addr', 'add', `${ip}/32`, 'dev', 'eth0');
        // On-link: the node's end answers ARP for its own addresses (169.254.169.254, the node IP).
        await pod.ip('route', 'add', 'default', 'dev', 'eth0');
      }
      topology.pods.push(ipv6 ? { ns: pod, ip, ip6: `fd00:200::${11 + n}` } : { ns: pod, ip });
    }
    return topology;
  } catch (error) {
    await topology.delete();
    throw error;
  }
}
