// The DNAT rule that sends pods' metadata requests (169.254.169.254:80) to this proxy, as
// kube2iam's --iptables installs it. Check-then-append keeps restarts idempotent; every
// call waits for the xtables lock so it does not fail beside kube-proxy or a CNI plugin
// that holds it; and the rule stays after exit unless asked, so a dead proxy leaves pods
// unable to reach the node's own credentials (fail closed).

import { isIP } from 'node:net';
import { runCommand, type CommandResult, type CommandRunner, type NodeCommand } from './commands.js';
import { hostInterfaces, processHasNetAdmin } from './host.js';

export interface DnatRuleSpec {
  /** `--metadata-addr`, host[:port]; the rule matches port 80 whatever the port. */
  metadataAddr: string;
  /** `--host-interface`: a name, `prefix+` (wildcard) or `!name` (every other interface). */
  hostInterface: string;
  hostIp: string;
  appPort: number;
}

export class IptablesError extends Error {
  override name = 'IptablesError';
}

/** Seconds each iptables call waits for the xtables lock. */
const LOCK_WAIT_SECONDS = '5';

interface HostInterface {
  name: string;
  negated: boolean;
  /** iptables' trailing `+`: matches by prefix, so there is nothing to look up. */
  wildcard: boolean;
}

function parseInterface(text: string): HostInterface {
  const negated = text.startsWith('!');
  const name = negated ? text.slice(1) : text;
  // The kernel's limit (IFNAMSIZ - 1) and the characters it refuses in a name.
  if (name.length === 0 || name.length > 15 || /[\s/]/.test(name) || name === '.' || name === '..') {
    throw new IptablesError(`host interface "${text}" is not a valid interface name (1-15 characters, no whitespace or "/", optional leading "!")`);
  }
  return { name, negated, wildcard: name.endsWith('+') };
}

/** Pure: the rule's match and target arguments (without -t/-A/-C), or throws IptablesError. */
export function dnatRuleArgs(spec: DnatRuleSpec): string[] {
  const host = /^(.*?)(?::\d{1,5})?$/.exec(spec.metadataAddr.trim())?.[1] ?? '';
  if (isIP(host) !== 4) {
    throw new IptablesError(`metadata address "${spec.metadataAddr}" is not an IPv4 address with an optional :port`);
  }
  if (isIP(spec.hostIp) !== 4) throw new IptablesError(`host IP "${spec.hostIp}" is not an IPv4 address`);
  if (!Number.isInteger(spec.appPort) || spec.appPort < 1 || spec.appPort > 65535) {
    throw new IptablesError(`app port ${spec.appPort} is not a port number (1-65535)`);
  }
  const iface = parseInterface(spec.hostInterface);
  return [
    '-d',
    host,
    '-p',
    'tcp',
    '--dport',
    '80',
    ...(iface.negated ? ['!'] : []),
    '-i',
    iface.name,
    '-j',
    'DNAT',
    '--to-destination',
    `${spec.hostIp}:${spec.appPort}`,
  ];
}

/**
 * The iptables backend the node already uses, as kube-proxy's iptables-wrapper picks it:
 * the one, legacy or nft, that holds more rules. A rule written to the other backend
 * would sit beside kube-proxy's and the CNI's, never seen by the node's tools, under a
 * different lock. `iptables` when the two variants are not both installed.
 */
export async function nodeIptables(runner: CommandRunner = runCommand): Promise<NodeCommand> {
  const count = async (save: NodeCommand): Promise<number | null> => {
    const result = await runner(save, []).catch(() => null);
    return result === null || result.code !== 0 ? null : result.stdout.split('\n').filter((line) => line.startsWith('-')).length;
  };
  const [legacy, nft] = await Promise.all([count('iptables-legacy-save'), count('iptables-nft-save')]);
  if (legacy === null || nft === null) return 'iptables';
  return legacy > nft ? 'iptables-legacy' : 'iptables-nft';
}

/** What the rule needs to know of the node and this process; read in-process by default. */
export interface HostView {
  interfaces(): string[];
  hasNetAdmin(): boolean;
}

const THIS_HOST: HostView = { interfaces: hostInterfaces, hasNetAdmin: processHasNetAdmin };

/** What to change when the rule cannot be installed for lack of privileges. */
const PRIVILEGE_HINT =
  'run the container as root (runAsUser: 0) with the capabilities NET_ADMIN and NET_RAW, or privileged: true; or install the DNAT rule on the node and drop --iptables';

export class MetadataDnatRule {
  private readonly args: string[];
  private readonly iface: HostInterface;
  private readonly runner: CommandRunner;
  private readonly host: HostView;
  private iptables: NodeCommand | null;

  /**
   * Validates the spec at once (throws IptablesError); nothing runs until ensure() or
   * remove(). Without `iptables`, the backend is the node's own (nodeIptables).
   */
  constructor(spec: DnatRuleSpec, options: { runner?: CommandRunner; iptables?: NodeCommand; host?: HostView } = {}) {
    this.args = dnatRuleArgs(spec);
    this.iface = parseInterface(spec.hostInterface);
    this.runner = options.runner ?? runCommand;
    this.host = options.host ?? THIS_HOST;
    this.iptables = options.iptables ?? null;
  }

  /**
   * Throws an IptablesError, one line saying what to change, when the rule cannot be
   * installed here: no NET_ADMIN, or a named interface this node does not have (a
   * wildcard matches by prefix, so there is nothing to look up). Checked before the
   * proxy serves, so it never serves pods that no rule sends to it.
   */
  preflight(): void {
    if (!this.host.hasNetAdmin()) {
      const uid = process.getuid?.() ?? -1;
      throw new IptablesError(`--iptables needs the NET_ADMIN capability, which this process (uid ${uid}) does not have: ${PRIVILEGE_HINT}`);
    }
    if (this.iface.wildcard) return;
    let present: string[];
    try {
      present = this.host.interfaces();
    } catch (error) {
      throw new IptablesError(
        `cannot list the node's interfaces to check --host-interface "${this.iface.name}" (${(error as Error).message}): mount sysfs at /sys, or use a wildcard such as eni+`,
      );
    }
    if (!present.includes(this.iface.name)) {
      const shown = present.length > 12 ? `${present.slice(0, 12).join(', ')}, ...` : present.join(', ');
      throw new IptablesError(
        `host interface "${this.iface.name}" not found on this node (it has: ${shown}): set --host-interface to the interface pod traffic arrives on, or a wildcard such as eni+ or cali+`,
      );
    }
  }

  /** Installs the rule unless it is there already; preflight() has passed. */
  async ensure(): Promise<'added' | 'present'> {
    this.iptables ??= await nodeIptables(this.runner);
    if (await this.exists()) return 'present';
    await this.call('-A');
    return 'added';
  }

  /** Deletes every copy of the rule (older runs may have left several); returns how many. */
  async remove(): Promise<number> {
    this.iptables ??= await nodeIptables(this.runner);
    let removed = 0;
    while (await this.exists()) {
      await this.call('-D');
      removed++;
    }
    return removed;
  }

  describe(): string {
    return [this.iptables ?? 'iptables', '-t', 'nat', '-A', 'PREROUTING', ...this.args].join(' ');
  }

  private async exists(): Promise<boolean> {
    const result = await this.runner(this.binary, this.argv('-C'));
    // Exit 1 is "no such rule" (as go-iptables, which kube2iam uses, reads it); others are failures, the lock timing out among them.
    if (result.code === 0 || result.code === 1) return result.code === 0;
    throw this.failure('-C', result);
  }

  private async call(action: '-A' | '-D'): Promise<void> {
    const result = await this.runner(this.binary, this.argv(action));
    if (result.code !== 0) throw this.failure(action, result);
  }

  private get binary(): NodeCommand {
    return this.iptables ?? 'iptables';
  }

  private argv(action: '-A' | '-C' | '-D'): string[] {
    return ['-w', LOCK_WAIT_SECONDS, '-t', 'nat', action, 'PREROUTING', ...this.args];
  }

  private failure(action: string, result: CommandResult): IptablesError {
    const output = (result.stderr.trim() || result.stdout.trim()).replace(/\s*\n\s*/g, '; ');
    const hint = /permission denied|you must be root|operation not permitted/i.test(output) ? `: ${PRIVILEGE_HINT}` : '';
    return new IptablesError(`${this.binary} ${action} of the metadata DNAT rule failed (exit ${result.code}): ${output}${hint}`);
  }
}
