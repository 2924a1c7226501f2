// Pipelining order, the pipelining cap, backpressure, timeouts and the connection cap.

import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'node:net';
import { once } from 'node:events';
import { PreparedResponse, type Request } from '../../lib/http/index.js';
import { H } from './cases.js';
import { startServer, WireClient } from './wire.js';

const get = (path: string): string => `GET ${path} HTTP/1.1\r\n${H}\r\n`;

t.test('pipelined answers go out in request order even when a later handler answers first', async (t) => {
  const delays: Record<string, number> = { '/slow': 150, '/fast': 0, '/medium': 40 };
  const { server, port } = await startServer((request) => {
    const delay = delays[request.path] ?? 0;
    const answer = (): void => request.respondText(200, request.path);
    if (delay === 0) answer();
    else setTimeout(answer, delay);
  });
  t.teardown(() => server.close());
  const client = await WireClient.open(port);
  t.teardown(() => client.destroy());
  client.write(get('/slow') + get('/fast') + get('/medium') + get('/fast'));
  const bodies: string[] = [];
  for (let n = 0; n < 4; n++) bodies.push((await client.response())?.body.toString() ?? 'none');
  t.same(bodies, ['/slow', '/fast', '/medium', '/fast']);
});

t.test('reading stops at the pipelining cap and resumes as answers go out', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  const { server, port } = await startServer(
    (request) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        request.respondText(200, request.path);
      }, 5);
    },
    { maxPipelined: 3 },
  );
  t.teardown(() => server.close());
  const client = await WireClient.open(port);
  t.teardown(() => client.destroy());
  let burst = '';
  for (let n = 0; n < 40; n++) burst += get(`/${n}`);
  client.write(burst);
  const bodies: string[] = [];
  for (let n = 0; n < 40; n++) bodies.push((await client.response())?.body.toString() ?? 'none');
  t.same(
    bodies,
    Array.from({ length: 40 }, (_, n) => `/${n}`),
    'all answered, in order',
  );
  t.equal(maxInFlight, 3, 'never more than the cap in flight');
});

t.test('a client that does not read its answers stops the server reading its requests', async (t) => {
  const big = Buffer.alloc(256 * 1024, 0x61);
  const answer = new PreparedResponse(200, [], big);
  let handled = 0;
  const { server, port } = await startServer((request) => {
    handled++;
    request.send(answer);
  });
  t.teardown(() => server.close());
  const socket = connect(port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  await once(socket, 'connect');
  socket.pause(); // the client reads nothing
  const total = 200; // 50 MiB of answers if all were produced at once
  let burst = '';
  for (let n = 0; n < total; n++) burst += get(`/${n}`);
  socket.write(burst);
  await sleep(500);
  const whilePaused = handled;
  t.ok(whilePaused < total / 2, `only ${whilePaused} of ${total} handled while the client does not read`);
  const expected = total * answer.bytes(0, false).length;
  let received = 0;
  const done = new Promise<void>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= expected) resolve();
    });
  });
  socket.resume();
  await Promise.race([done, sleep(10_000)]);
  t.equal(received, expected, 'every answer arrives once the client reads');
  t.equal(handled, total, 'all handled');
});

t.test('a head trickled byte by byte over a socket parses like one write', async (t) => {
  let seen: Request | null = null;
  const { server, port } = await startServer((request) => {
    seen = request;
    request.respondText(200, 'ok');
  });
  t.teardown(() => server.close());
  const client = await WireClient.open(port);
  t.teardown(() => client.destroy());
  const raw = `PUT /latest/api/token HTTP/1.1\r\n${H}X-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 2\r\n\r\nhi`;
  for (const byte of Buffer.from(raw)) {
    client.write(Buffer.from([byte]));
    await sleep(1);
  }
  t.equal((await client.response())?.status, 200);
  const request = seen as Request | null;
  t.equal(request?.header('x-aws-ec2-metadata-token-ttl-seconds'), '21600');
  t.equal(request?.body.toString(), 'hi');
});

t.test('slowloris: a head that does not arrive within the bound gets 408 and the connection closes', async (t) => {
  const { server, port } = await startServer(undefined, { headersTimeout: 300 });
  t.teardown(() => server.close());
  const client = await WireClient.open(port);
  t.teardown(() => client.destroy());
  const started = Date.now();
  const head = `GET / HTTP/1.1\r\n${H}X-Slow: ${'z'.repeat(100)}`;
  let sent = 0;
  const trickle = setInterval(() => {
    if (sent < head.length && !client.closed) client.write(head[sent++] as string);
  }, 20);
  t.teardown(() => clearInterval(trickle));
  const response = await client.response(3000);
  const elapsed = Date.now() - started;
  t.equal(response?.status, 408);
  t.ok(await client.closedWithin(3000), 'closed');
  t.ok(elapsed >= 250 && elapsed < 1500, `answered after ${elapsed} ms`);
  t.equal(server.stats.requestTimeouts, 1);
});

t.test('an idle keep-alive connection closes after the bound, a busy one does not', async (t) => {
  const { server, port } = await startServer(undefined, { keepAliveTimeout: 300 });
  t.teardown(() => server.close());
  const idle = await WireClient.open(port);
  const busy = await WireClient.open(port);
  t.teardown(() => idle.destroy());
  t.teardown(() => busy.destroy());
  idle.write(get('/'));
  t.equal((await idle.response())?.status, 200);
  const started = Date.now();
  for (let n = 0; n < 6; n++) {
    busy.write(get('/'));
    t.equal((await busy.response())?.status, 200);
    await sleep(100);
  }
  t.ok(idle.closed, 'idle connection closed');
  t.notOk(busy.closed, 'connection in use stays open past the bound');
  t.ok(Date.now() - started >= 300);
  t.ok(await busy.closedWithin(2000), 'busy one closes once idle');
  t.equal(server.stats.idleTimeouts, 2);
});

t.test('a handler that never answers gets a 503 from the engine within the bound', async (t) => {
  const { server, port } = await startServer(() => {}, { handlerTimeout: 300 });
  t.teardown(() => server.close());
  const client = await WireClient.open(port);
  t.teardown(() => client.destroy());
  client.write(get('/never'));
  const response = await client.response(3000);
  t.equal(response?.status, 503);
  t.ok(await client.closedWithin(2000));
  t.equal(server.stats.handlerTimeouts, 1);
});

t.test('a handler that throws gets a 500, and the server keeps serving', async (t) => {
  const { server, port } = await startServer((request) => {
    if (request.path === '/throw') throw new Error('boom');
    request.respondText(200, 'ok');
  });
  t.teardown(() => server.close());
  const a = await WireClient.open(port);
  t.teardown(() => a.destroy());
  a.write(get('/throw'));
  t.equal((await a.response())?.status, 500);
  const b = await WireClient.open(port);
  t.teardown(() => b.destroy());
  b.write(get('/'));
  t.equal((await b.response())?.status, 200);
  t.equal(server.stats.handlerErrors, 1);
});

t.test('connections beyond the cap get 503 and are closed; a freed slot is reused', async (t) => {
  const { server, port } = await startServer(undefined, { maxConnections: 3 });
  t.teardown(() => server.close());
  const held: WireClient[] = [];
  for (let n = 0; n < 3; n++) {
    const c = await WireClient.open(port);
    c.write(get('/'));
    t.equal((await c.response())?.status, 200);
    held.push(c);
  }
  t.teardown(() => {
    for (const c of held) c.destroy();
  });
  const extra = await WireClient.open(port);
  t.teardown(() => extra.destroy());
  t.equal((await extra.response())?.status, 503, 'over the cap');
  t.ok(await extra.closedWithin(2000));
  held.shift()?.destroy();
  await sleep(50);
  const next = await WireClient.open(port);
  t.teardown(() => next.destroy());
  next.write(get('/'));
  t.equal((await next.response())?.status, 200, 'slot reused');
  t.equal(server.stats.connectionsRejected, 1);
});

/** Opens a connection from `from` and reports the status of its first answer to a GET (or the 503 it got at once). */
async function statusFrom(port: number, from: string, held: WireClient[]): Promise<number | undefined> {
  const c = await WireClient.open(port, from);
  held.push(c);
  c.write(get('/'));
  return (await c.response())?.status;
}

t.test('one address cannot take the connection cap: past its share it gets 503, other addresses still get in', async (t) => {
  const { server, port } = await startServer(undefined, { maxConnections: 20, maxConnectionsPerAddress: 5 });
  t.teardown(() => server.close());
  const held: WireClient[] = [];
  t.teardown(() => {
    for (const c of held) c.destroy();
  });
  for (let n = 0; n < 5; n++) t.equal(await statusFrom(port, '127.0.0.2', held), 200);
  const refused = await WireClient.open(port, '127.0.0.2');
  held.push(refused);
  const answer = await refused.response();
  t.equal(answer?.status, 503, 'the sixth from the same address');
  t.equal(answer?.body.toString(), 'too many connections from this address\n');
  t.ok(await refused.closedWithin(2000));
  t.equal(await statusFrom(port, '127.0.0.3', held), 200, 'another address');
  held[0]?.destroy();
  await sleep(50);
  t.equal(await statusFrom(port, '127.0.0.2', held), 200, 'a freed slot is the address’s again');
});

t.test('the last tenth of the cap is kept for addresses with few connections', async (t) => {
  // 27 of 30 for anyone; the last 3 only for addresses holding fewer than 8.
  const { server, port } = await startServer(undefined, { maxConnections: 30, maxConnectionsPerAddress: 30 });
  t.teardown(() => server.close());
  const held: WireClient[] = [];
  t.teardown(() => {
    for (const c of held) c.destroy();
  });
  for (let n = 0; n < 27; n++) t.equal(await statusFrom(port, `127.0.0.${2 + (n % 3)}`, held), 200);
  t.equal(await statusFrom(port, '127.0.0.2', held), 503, 'an address with 9 is refused from the reserve');
  for (let n = 0; n < 3; n++) t.equal(await statusFrom(port, `127.0.0.${10 + n}`, held), 200, 'a pod with none gets in');
  t.equal(await statusFrom(port, '127.0.0.20', held), 503, 'the cap itself still holds');
  t.equal(server.connectionCount, 30);
});

t.test('close() lets in-flight requests finish, closes idle connections and refuses new ones', async (t) => {
  const { server, port } = await startServer((request) => {
    setTimeout(() => request.respondText(200, 'late'), 200);
  });
  const idle = await WireClient.open(port);
  const busy = await WireClient.open(port);
  t.teardown(() => idle.destroy());
  t.teardown(() => busy.destroy());
  busy.write(get('/'));
  await sleep(50);
  const closing = server.close(2000);
  t.ok(await idle.closedWithin(1000), 'idle connection closed at once');
  const response = await busy.response(2000);
  t.equal(response?.body.toString(), 'late', 'in-flight request answered');
  t.equal(response?.headers.connection, 'close', 'with Connection: close');
  await closing;
  t.equal(server.connectionCount, 0);
});

t.test('a half-closed client still gets its answer', async (t) => {
  const { server, port } = await startServer((request) => {
    setTimeout(() => request.respondText(200, 'ok'), 50);
  });
  t.teardown(() => server.close());
  const client = await WireClient.open(port);
  t.teardown(() => client.destroy());
  client.socket.end(get('/'));
  t.equal((await client.response())?.status, 200);
  t.ok(await client.closedWithin(1000));
});
