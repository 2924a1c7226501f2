import { createServer } from 'node:net';

/**
 * A loopback port nothing listens on, for "the service is down" (connection refused).
 * Not a port from freePort: a port free a moment ago can be taken by a parallel test's
 * server, or be the source port the kernel picks for the very connection (a self-connect),
 * and then the connection is answered instead of refused. Port 9 (discard) is below the
 * ephemeral range, so neither can happen.
 */
const CLOSED_PORT = 9;
export const CLOSED_ADDRESS = `127.0.0.1:${CLOSED_PORT}`;

/** A TCP port that was free on `host` a moment ago. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
