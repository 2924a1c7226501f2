import { isIP } from 'node:net';

/**
 * The canonical form of an address as the index keys it: IPv4-mapped IPv6
 * (`::ffff:10.0.0.1`, what a dual-stack socket reports) becomes plain IPv4, IPv6 is
 * lower-cased. Returns null for anything that is not an IP address.
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
  let ip = address.trim();
  if (ip.length > 7 && ip.charCodeAt(0) === 0x3a && /^::ffff:/i.test(ip) && isIP(ip.slice(7)) === 4) ip = ip.slice(7);
  const family = isIP(ip);
  if (family === 0) return null;
  return family === 6 ? ip.toLowerCase() : ip;
}
