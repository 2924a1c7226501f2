// The container-credentials endpoint's addresses on the node, as the EKS Pod Identity
// Agent installs its own: 169.254.170.23 (and fd00:ec2::23 where the node has IPv6) on a
// dummy link, so a pod's packets to them, routed to the node like any others, are the
// node's to answer. Idempotent (a restart finds them in place), and left after exit like
// the DNAT rule unless asked (--iptables-remove-on-exit): a proxy that is down refuses
// connections there, it does not let them reach anything else.

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { runCommand, type CommandRunner } from './commands.js';
import { processHasNetAdmin } from './host.js';

export class EndpointAddressError extends Error {
  override name = 'EndpointAddressError';
}

/**
 * Whether an IPv6 address can go on `link` (the dummy link made for it takes the
 * defaults): IPv6 is in the kernel and not switched off, for all links or that one.
 */
export function nodeHasIpv6(link: string | null): boolean {
  const enabled = (conf: string): boolean => {
    try {
      return readFileSync(`/proc/sys/net/ipv6/conf/${conf}/disable_ipv6`, 'utf8').trim() === '0';
    } catch {
      return false; // no IPv6 in this kernel, or no such link
    }
  };
  return enabled('all') && enabled(link === 'lo' ? 'lo' : 'default');
}

/** Pure: the addresses `ip -o addr show` lists, without their prefix length. */
export function listedAddresses(ipAddrOutput: string): string[] {
  return [...ipAddrOutput.matchAll(/\binet6? ([0-9a-fA-F.:]+)\//g)].map((m) => (m[1] as string).toLowerCase());
}

export interface EndpointAddressesSpec {
  /** The link that holds them: a dummy link made here, or `lo`. */
  link: string;
  addresses: string[];
}

export class EndpointAddresses {
  constructor(
    private readonly spec: EndpointAddressesSpec,
    private readonly runner: CommandRunner = runCommand,
    private readonly hasNetAdmin: () => boolean = processHasNetAdmin,
  ) {
    const link = spec.link;
    if (link.length === 0 || link.length > 15 || /[\s/]/.test(link)) throw new EndpointAddressError(`link name "${link}" is not a valid interface name`);
  }

  preflight(): void {
    if (!this.hasNetAdmin()) {
      throw new EndpointAddressError(
        `--container-credentials-link needs the NET_ADMIN capability to put ${this.spec.addresses.join(' and ')} on ${this.spec.link}: add it, or set --container-credentials-link= and install the addresses on the node`,
      );
    }
  }

  /** Makes the link (unless it is lo) and puts each address on it; says what was added. */
  async ensure(): Promise<string[]> {
    const { link, addresses } = this.spec;
    const added: string[] = [];
    if (link !== 'lo' && (await this.runner('ip', ['link', 'show', 'dev', link])).code !== 0) {
      const made = await this.runner('ip', ['link', 'add', link, 'type', 'dummy']);
      if (made.code !== 0 && /unknown device type/i.test(made.stderr)) {
        throw new EndpointAddressError(
          `this node's kernel cannot make dummy links (no dummy module) for ${link}: set --container-credentials-link=lo to put the addresses on loopback`,
        );
      }
      if (made.code !== 0) throw new EndpointAddressError(`ip link add ${link} type dummy failed (exit ${made.code}): ${made.stderr.trim().slice(0, 300)}`);
      added.push(`link ${link}`);
    }
    await this.ip(['link', 'set', link, 'up']);
    const present = listedAddresses((await this.ip(['-o', 'addr', 'show', 'dev', link])).stdout);
    for (const address of addresses) {
      if (present.includes(address.toLowerCase())) continue;
      // No duplicate-address detection: a tentative address cannot be listened on.
      if (isIP(address) === 6) await this.ip(['-6', 'addr', 'add', `${address}/128`, 'dev', link, 'nodad']);
      else await this.ip(['addr', 'add', `${address}/32`, 'dev', link]);
      added.push(address);
    }
    return added;
  }

  /**
   * Takes the addresses off: the whole link when it is a dummy link holding nothing else
   * (the one made for them), else each address, so a link of the node's own keeps the rest.
   */
  async remove(): Promise<void> {
    const { link, addresses } = this.spec;
    const shown = await this.runner('ip', ['-d', 'link', 'show', 'dev', link]);
    if (shown.code !== 0) return;
    const ours = addresses.map((address) => address.toLowerCase());
    const present = listedAddresses((await this.ip(['-o', 'addr', 'show', 'dev', link])).stdout);
    const others = present.filter((address) => !ours.includes(address) && !address.startsWith('fe80:'));
    if (/\bdummy\b/.test(shown.stdout) && others.length === 0) {
      await this.ip(['link', 'del', link]);
      return;
    }
    for (const address of addresses) {
      if (present.includes(address.toLowerCase())) await this.ip(['addr', 'del', `${address}/${isIP(address) === 6 ? 128 : 32}`, 'dev', link]);
    }
  }

  private async ip(args: string[]) {
    const result = await this.runner('ip', args);
    if (result.code !== 0) throw new EndpointAddressError(`ip ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim().slice(0, 300)}`);
    return result;
  }
}
