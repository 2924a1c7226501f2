// What the node and this process look like, read in-process rather than by running tools
// the image may not contain: the network interfaces of the node's network namespace and
// whether this process may change its nat table.

import { readdirSync, readFileSync } from 'node:fs';

/** The bit of CAP_NET_ADMIN in a capability set (linux/capability.h). */
const CAP_NET_ADMIN = 12n;

/** The interfaces of the network namespace sysfs was mounted in (the host's, for a hostNetwork pod). */
export function hostInterfaces(): string[] {
  return readdirSync('/sys/class/net').sort();
}

/** Pure: whether a /proc/<pid>/status text grants CAP_NET_ADMIN in the effective set. */
export function hasNetAdmin(procStatus: string): boolean {
  const hex = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(procStatus)?.[1];
  return hex !== undefined && ((BigInt(`0x${hex}`) >> CAP_NET_ADMIN) & 1n) === 1n;
}

export function processHasNetAdmin(): boolean {
  return hasNetAdmin(readFileSync('/proc/self/status', 'utf8'));
}
