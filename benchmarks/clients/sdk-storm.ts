// The load generator of the cold-start storm (benchmarks/storm.ts), run inside a pod
// network namespace that holds every pod address: each address starts its processes at
// once, and each process fetches credentials from 169.254.169.254 with the connection
// pattern of a real SDK (simulated here; the bytes on the wire are the SDK's requests):
// - the JS v3 SDK (@smithy/credential-provider-imds): a new connection for each of its
//   three requests (token, role listing, credential document);
// - botocore: one kept-alive connection for the same three requests.
// Every request has the SDKs' 1 s timeout. Prints one JSON line with every fetch.
// The token the stand-in metadata service gives the Go peer is a 1.2 KB body; only its
// first line is sent back, as a real token is one line.
//   node sdk-storm.js '{"addresses":[...],"processesPerAddress":3}'

import { connect, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';

const METADATA = '169.254.169.254';
const TIMEOUT_MS = 1_000;
const LISTING = '/latest/meta-data/iam/security-credentials/';

export interface Fetch {
  sdk: 'js-v3' | 'botocore';
  ms: number;
  /** The credential document arrived, with Code Success. */
  ok: boolean;
  error?: string;
}

interface Answer {
  status: number;
  body: string;
}

/**
 * One request on `socket` and its answer, read by Content-Length (or to the close). Raw
 * sockets rather than node:http: the generator's own cost must stay far below the
 * server's, or the storm measures the generator.
 */
function exchange(socket: Socket, method: string, path: string, headers: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => fail(new Error(`${method} ${path}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    const done = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', fail);
    };
    const fail = (error: Error): void => {
      done();
      reject(error);
    };
    const complete = (): boolean => {
      const headEnd = text.indexOf('\r\n\r\n');
      if (headEnd === -1) return false;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, headEnd));
      if (length === null || text.length - headEnd - 4 < Number(length[1])) return false;
      done();
      resolve({ status: Number(text.slice(9, 12)), body: text.slice(headEnd + 4, headEnd + 4 + Number(length[1])) });
      return true;
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      complete();
    };
    const onEnd = (): void => {
      if (complete()) return;
      const headEnd = text.indexOf('\r\n\r\n');
      if (headEnd === -1) fail(new Error(`${method} ${path}: connection closed without an answer`));
      else {
        done();
        resolve({ status: Number(text.slice(9, 12)), body: text.slice(headEnd + 4) });
      }
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', fail);
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: ${METADATA}\r\nUser-Agent: storm\r\nAccept: */*\r\n${headers}\r\n`);
  });
}

function open(from: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: METADATA, port: 80, localAddress: from, noDelay: true });
    const timer = setTimeout(() => socket.destroy(new Error(`connect: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function fetchCredentials(from: string, sdk: Fetch['sdk']): Promise<Fetch> {
  const started = performance.now();
  let kept: Socket | null = null;
  const call = async (method: string, path: string, headers: string): Promise<Answer> => {
    if (kept !== null) return exchange(kept, method, path, headers);
    const socket = await open(from);
    try {
      return await exchange(socket, method, path, `Connection: close\r\n${headers}`);
    } finally {
      socket.destroy();
    }
  };
  try {
    // botocore keeps its connection within a process; the JS SDK's requests each open one.
    if (sdk === 'botocore') kept = await open(from);
    const token = await call('PUT', '/latest/api/token', 'X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n');
    if (token.status !== 200) throw new Error(`token: ${token.status}`);
    const withToken = `X-aws-ec2-metadata-token: ${token.body.split('\n')[0]}\r\n`;
    const listing = await call('GET', LISTING, withToken);
    if (listing.status !== 200) throw new Error(`listing: ${listing.status}`);
    const document = await call('GET', `${LISTING}${listing.body.split('\n')[0]}`, withToken);
    const ok = document.status === 200 && (JSON.parse(document.body) as { Code?: string }).Code === 'Success';
    return { sdk, ms: performance.now() - started, ok, ...(ok ? {} : { error: `document: ${document.status}` }) };
  } catch (error) {
    return { sdk, ms: performance.now() - started, ok: false, error: (error as Error).message };
  } finally {
    kept?.destroy();
  }
}

async function main(): Promise<void> {
  const { addresses, processesPerAddress } = JSON.parse(process.argv[2] ?? '{}') as { addresses: string[]; processesPerAddress: number };
  // 169.254.169.254 must be the benchmark's stand-in, never a real metadata service: run
  // only in the pod namespace the benchmark built, which holds every pod address.
  const local = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
  if (addresses.length === 0 || !addresses.every((address) => local.has(address))) {
    process.stderr.write('sdk-storm: runs only in the pod network namespace the storm benchmark built (its addresses are not local here)\n');
    process.exit(2);
  }
  const fetches = await Promise.all(
    addresses.flatMap((from) => Array.from({ length: processesPerAddress }, (_, n) => fetchCredentials(from, n % 3 === 1 ? 'botocore' : 'js-v3'))),
  );
  process.stdout.write(`${JSON.stringify(fetches)}\n`);
}

void main();
