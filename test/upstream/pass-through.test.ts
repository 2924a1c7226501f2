// Pass-through as the engine writes it: streamed bodies (chunked, sized, HTTP/1.0),
// ordering behind a streamed answer, and the bounded 502 when the upstream fails.
// The upstream here is a hand-written node:http server, because these are faults and
// framings the real metadata service (and moto) cannot be made to produce: a stall, a
// body that breaks midway, a slow chunked body, garbage instead of HTTP.

import t from 'tap';
import { eventually } from '../harness/wait.js';
import { createServer, request as httpRequest, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { HttpServer } from '../../lib/http/index.js';
import { MetadataUpstream, type UpstreamOptions } from '../../lib/upstream/metadata.js';
import { CLOSED_ADDRESS } from '../harness/ports.js';
import { PROBE, WireClient } from '../http/wire.js';

/** Requests the upstream holds without answering. */
let stalled = 0;

/** Upstream stand-in with the faults named in the header. */
const routes: Record<string, (res: ServerResponse) => void> = {
  '/sized': (res) => res.end('x'.repeat(1 << 20)),
  '/slow-chunks': (res) => {
    res.write('one,');
    setTimeout(() => res.write('two,'), 50);
    setTimeout(() => res.end('three'), 100);
  },
  '/slow-sized': (res) => {
    res.setHeader('content-length', '5');
    res.flushHeaders();
    setTimeout(() => res.end('later'), 150);
  },
  '/broken': (res) => {
    res.setHeader('content-length', '100');
    res.write('only part');
    setTimeout(() => res.socket?.destroy(), 30);
  },
  '/stall': (res) => {
    stalled++;
    res.on('close', () => stalled--);
  },
  '/slow-head': (res) => {
    setTimeout(() => res.end('late'), 150);
  },
};
/** Token PUTs the upstream answered (the proxy's own), and the headers of the last /headers request. */
let nodeTokenRequests = 0;
let seenHeaders: Record<string, unknown> = {};
routes['/latest/api/token'] = (res) => {
  nodeTokenRequests++;
  res.end('node-token');
};
routes['/headers'] = (res) => {
  // Echoes a token header back, as moto echoes every request header.
  res.setHeader('x-aws-ec2-metadata-token', 'echoed');
  res.end('seen');
};
const upstreamServer: Server = createServer((req, res) => {
  if (req.url === '/headers') seenHeaders = req.headers;
  (routes[req.url ?? ''] ?? ((r: ServerResponse) => r.end(`echo ${req.url}`)))(res);
});
await new Promise<void>((resolve) => upstreamServer.listen(0, '127.0.0.1', resolve));
t.teardown(() => upstreamServer.close());
const upstreamPort = (upstreamServer.address() as { port: number }).port;

async function proxy(address: string, options: Partial<UpstreamOptions> = {}): Promise<{ port: number; upstream: MetadataUpstream }> {
  const upstream = new MetadataUpstream(address, options);
  const server = new HttpServer((request) => {
    if (request.path === '/probe') request.respondText(200, 'fast');
    else upstream.forward(request, false);
  });
  const { port } = await server.listen(0, '127.0.0.1');
  t.teardown(async () => {
    await server.close(0);
    await upstream.close();
  });
  return { port, upstream };
}

function get(
  port: number,
  path: string,
  options: { http10?: boolean } = {},
): Promise<{ status: number; headers: Record<string, unknown>; body: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: Date.now() - started }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.http10 === true) (req as unknown as { httpVersion: string }).httpVersion = '1.0';
    req.end();
  });
}

const { port } = await proxy(`127.0.0.1:${upstreamPort}`, { headersTimeoutMs: 300, connectTimeoutMs: 300 });

t.test('the path and query string pass unchanged', async (t) => {
  const answer = await get(port, '/latest/meta-data/tags/instance/Name?x=1&y=%20');
  t.equal(answer.body, 'echo /latest/meta-data/tags/instance/Name?x=1&y=%20');
});

t.test('a large sized body passes whole, with its length', async (t) => {
  const answer = await get(port, '/sized');
  t.equal(answer.status, 200);
  t.equal(answer.headers['content-length'], String(1 << 20));
  t.equal(answer.body.length, 1 << 20);
});

t.test('a body without a length is streamed chunked to an HTTP/1.1 client as it arrives', async (t) => {
  const answer = await get(port, '/slow-chunks');
  t.equal(answer.headers['transfer-encoding'], 'chunked');
  t.equal(answer.body, 'one,two,three');
});

t.test('an HTTP/1.0 client gets a body without a length delimited by the close', async (t) => {
  const client = await WireClient.open(port);
  client.write('GET /slow-chunks HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  t.ok(await client.closedWithin(2000), 'the connection ends with the body');
  const text = client.unread.toString('latin1');
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(text, /\r\nConnection: close\r\n/);
  t.notMatch(text, /Transfer-Encoding/i);
  t.ok(text.endsWith('\r\n\r\none,two,three'));
});

t.test('nothing is written after a body delimited by the close, even for pipelined requests', async (t) => {
  const client = await WireClient.open(port);
  client.write('GET /slow-chunks HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /probe HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  t.ok(await client.closedWithin(2000));
  const text = client.unread.toString('latin1');
  t.ok(text.endsWith('\r\n\r\none,two,three'), 'the body is the last thing on the connection');
  t.notMatch(text, /fast/);
});

t.test('a client that resets before the upstream answers does not take the proxy down', async (t) => {
  for (const path of ['/slow-head', '/slow-chunks', '/slow-sized']) {
    const client = await WireClient.open(port);
    client.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    client.socket.resetAndDestroy();
  }
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.equal((await get(port, '/probe')).body, 'fast', 'still serving');
});

t.test('pipelined pass-through behind a close-delimited body: dropped, and no refusal after it', async (t) => {
  const client = await WireClient.open(port);
  client.write('GET /slow-chunks HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /slow-chunks HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  t.ok(await client.closedWithin(2000));
  t.ok(client.unread.toString('latin1').endsWith('\r\n\r\none,two,three'), 'one answer, its body last');
  const refused = await WireClient.open(port);
  refused.write('GET /slow-chunks HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGARBAGE\r\n\r\n');
  t.ok(await refused.closedWithin(2000));
  t.ok(refused.unread.toString('latin1').endsWith('\r\n\r\none,two,three'), 'no 400 written into the body');
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal((await get(port, '/probe')).body, 'fast', 'still serving');
});

t.test('no 100 Continue is written into a streamed body', async (t) => {
  const client = await WireClient.open(port);
  client.write('GET /slow-sized HTTP/1.1\r\nHost: x\r\n\r\n');
  const deadline = Date.now() + 3000;
  while (!client.unread.includes('Content-Length: 5') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  client.write('PUT /probe HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n');
  const first = await client.response(3000);
  t.equal(first?.body.toString(), 'later', 'the streamed body is whole');
  client.destroy();
});

t.test('answers pipelined behind a streamed one wait for its body, in order', async (t) => {
  const client = await WireClient.open(port);
  client.write(`GET /slow-sized HTTP/1.1\r\nHost: x\r\n\r\n${PROBE}`);
  const first = await client.response(3000);
  const second = await client.response(3000);
  t.equal(first?.body.toString(), 'later');
  t.equal(second?.body.toString(), 'fast', 'the quick answer came second');

  // A request answered while the body before it is still streaming waits for that body.
  client.write('GET /slow-sized HTTP/1.1\r\nHost: x\r\n\r\n');
  const deadline = Date.now() + 3000;
  while (!client.unread.includes('Content-Length: 5') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  t.ok(client.unread.includes('Content-Length: 5') && !client.unread.includes('later'), 'the streamed head is out, its body not yet');
  client.write(PROBE);
  t.equal((await client.response(3000))?.body.toString(), 'later');
  t.equal((await client.response(3000))?.body.toString(), 'fast');
  client.destroy();
});

t.test('a body that breaks midway drops the connection instead of ending the answer', async (t) => {
  const client = await WireClient.open(port);
  client.write('GET /broken HTTP/1.1\r\nHost: x\r\n\r\n');
  t.ok(await client.closedWithin(3000), 'closed');
  t.equal(await client.response(10), null, 'no complete answer was written');
});

t.test('a stalled upstream gets 502 within the bound', async (t) => {
  const answer = await get(port, '/stall');
  t.equal(answer.status, 502);
  t.ok(answer.ms < 1500, `answered in ${answer.ms} ms`);
});

t.test('an upstream that is down, or speaks garbage, gets 502', async (t) => {
  const down = await proxy(CLOSED_ADDRESS, { connectTimeoutMs: 300, headersTimeoutMs: 300 });
  const refused = await get(down.port, '/latest/meta-data/instance-id');
  t.same([refused.status, refused.body], [502, 'metadata service unreachable\n']);
  t.equal(down.upstream.stats.errors, 1);

  const garbage = createTcpServer((socket) => socket.end('SSH-2.0-OpenSSH\r\n'));
  await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
  t.teardown(() => garbage.close());
  const bad = await proxy(`127.0.0.1:${(garbage.address() as { port: number }).port}`, { connectTimeoutMs: 300, headersTimeoutMs: 300 });
  t.equal((await get(bad.port, '/x')).status, 502);
});

t.test('a client that resets while its request waits upstream frees the upstream connection at once', async (t) => {
  const patient = await proxy(`127.0.0.1:${upstreamPort}`, { headersTimeoutMs: 10_000 });
  const client = await WireClient.open(patient.port);
  client.write('GET /stall HTTP/1.1\r\nHost: x\r\n\r\n');
  const deadline = Date.now() + 2000;
  while (stalled === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(stalled, 1, 'the request is held upstream');
  // A reset: the client is gone (a FIN alone may be a half-close that still reads the answer).
  client.socket.resetAndDestroy();
  const freed = Date.now() + 1000;
  while (stalled > 0 && Date.now() < freed) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(stalled, 0, 'the upstream request was cancelled, not left to its 10 s deadline');
  t.equal(patient.upstream.stats.abandoned, 1);
});

async function stallFrom(proxyPort: number, from: string): Promise<WireClient> {
  const client = await WireClient.open(proxyPort, from);
  client.write('GET /stall HTTP/1.1\r\nHost: x\r\n\r\n');
  return client;
}

t.test('one address cannot fill the upstream pool: past its share it gets 503, others still pass', async (t) => {
  const capped = await proxy(`127.0.0.1:${upstreamPort}`, { headersTimeoutMs: 10_000, perClient: 3 });
  const before = stalled;
  const held = [await stallFrom(capped.port, '127.0.0.2'), await stallFrom(capped.port, '127.0.0.2'), await stallFrom(capped.port, '127.0.0.2')];
  t.ok(await eventually(() => stalled === before + 3), 'three held upstream');
  const fourth = await stallFrom(capped.port, '127.0.0.2');
  const refused = await fourth.response(1000);
  t.equal(refused?.status, 503, 'the fourth from the same address');
  t.equal(refused?.headers['retry-after'], '1');
  held.push(await stallFrom(capped.port, '127.0.0.3'));
  t.ok(await eventually(() => stalled === before + 4), 'another address still passes');
  for (const client of held) client.socket.resetAndDestroy();
  t.ok(await eventually(() => stalled === before), 'all released');
  const again = await stallFrom(capped.port, '127.0.0.2');
  t.ok(await eventually(() => stalled === before + 1), 'the address may pass again once its requests are done');
  again.socket.resetAndDestroy();
  t.ok(await eventually(() => stalled === before));
  fourth.destroy();
});

t.test('the proxy’s own requests (tokens) never wait behind pods’ pass-through', async (t) => {
  const small = await proxy(`127.0.0.1:${upstreamPort}`, { headersTimeoutMs: 10_000, connections: 2 });
  const before = stalled;
  const held = [await stallFrom(small.port, '127.0.0.2'), await stallFrom(small.port, '127.0.0.3')];
  t.ok(await eventually(() => stalled === before + 2), 'every pass-through connection is busy');
  const started = Date.now();
  const answer = await small.upstream.fetch('PUT', '/latest/api/token');
  t.equal(answer.body, 'node-token');
  t.ok(Date.now() - started < 1000, `answered in ${Date.now() - started} ms`);
  for (const client of held) client.socket.resetAndDestroy();
  t.ok(await eventually(() => stalled === before));
});

t.test('a pod’s token never goes upstream; a request vouched for goes with the node’s own, fetched once', async (t) => {
  const upstream = new MetadataUpstream(`127.0.0.1:${upstreamPort}`);
  // The router vouches for a request whose pod showed a valid token; here a header stands in for it.
  const server = new HttpServer((request) => upstream.forward(request, request.header('x-vouched') === 'yes'));
  const { port: p } = await server.listen(0, '127.0.0.1');
  t.teardown(async () => {
    await server.close(0);
    await upstream.close();
  });
  const send = (headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown> }> =>
    new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: p, path: '/headers', headers, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      });
      req.on('error', reject);
      req.end();
    });
  const before = nodeTokenRequests;
  const plain = await send({ 'x-aws-ec2-metadata-token': 'pod-token' });
  t.notOk('x-aws-ec2-metadata-token' in seenHeaders, 'not vouched for: no token at all upstream');
  t.notOk('x-aws-ec2-metadata-token' in plain.headers, 'and none comes back, even echoed');
  await send({ 'x-aws-ec2-metadata-token': 'pod-token', 'x-aws-ec2-metadata-token-ttl-seconds': '60', 'x-vouched': 'yes' });
  t.equal(seenHeaders['x-aws-ec2-metadata-token'], 'node-token', 'vouched for: the node’s token, not the pod’s');
  t.notOk('x-aws-ec2-metadata-token-ttl-seconds' in seenHeaders);
  for (let n = 0; n < 5; n++) await send({ 'x-vouched': 'yes' });
  t.equal(nodeTokenRequests - before, 1, 'the node’s token is fetched once and kept');
});
