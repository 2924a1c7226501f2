import { isIP } from 'node:net';

/**
 * The canonical form of an address as the index keys it: IPv4-mapped IPv6
 * (`::ffff:10.0.0.1`, what a dual-stack socket reports) becomes plain IPv4, IPv6 takes
 * its RFC 5952 form. Returns null for anything that is not an IP address.
 */
export function normalizeIp(address: string): string | null {
  // Requests on one connection carry the same address string: the last answer is reused.
  if (address === lastAddress) return lastNormalized;
  const normalized = normalize(address);
  lastAddress = address;
  lastNormalized = normalized;
  return normalized;
}

let lastAddress = '';
let lastNormalized: string | null = null;

function normalize(address: string): string | null {
  const ip = address.trim();
  const family = isIP(ip);
  if (family === 4) return ip;
  if (family !== 6) return null;
  // RFC 5952's one spelling (the WHATWG URL serialiser writes it): `fd00:0:0::1`,
  // `FD00::0001` and `fd00::1` must be one key, whoever wrote the pod's IP.
  let canonical: string;
  try {
    canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return null; // a zone index (fe80::1%eth0): no pod has one
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped === null) return canonical;
  const high = Number.parseInt(mapped[1] as string, 16);
  const low = Number.parseInt(mapped[2] as string, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}
