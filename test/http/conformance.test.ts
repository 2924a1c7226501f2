// The request conformance table: each request with the status it must get, whether
// the connection must stay open after it, and for valid requests what the handler saw.

import t from 'tap';
import { cases, H } from './cases.js';
import { echoHandler, PROBE, startServer, WireClient, type Echo } from './wire.js';

t.test('conformance table', async (t) => {
  t.ok(cases.length >= 40, `${cases.length} cases`);
  const { server, port } = await startServer(echoHandler);
  t.teardown(() => server.close());
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const client = await WireClient.open(port);
      t.teardown(() => client.destroy());
      client.write(c.raw);
      const response = await client.response(2000, c.headRequest);
      if (response === null) {
        t.fail('no response');
        return;
      }
      t.equal(response.status, c.status, 'status');
      if (c.saw !== undefined) t.match(JSON.parse(response.body.toString('utf8')) as Echo, c.saw, 'parsed as expected');
      if (c.headRequest === true) t.equal(response.body.length, 0, 'no body for HEAD');
      if (c.open) {
        client.write(PROBE);
        const probe = await client.response();
        t.equal(probe?.status, 200, 'connection stays open');
      } else {
        t.ok(await client.closedWithin(2000), 'connection closed');
        t.equal(client.unread.length, 0, 'nothing after the final answer');
        if (c.status !== 200) t.equal(response.headers.connection, 'close', 'error answer says Connection: close');
      }
    });
  }
});

t.test('HTTP/1.0 keep-alive answers confirm keep-alive; closing answers say close', async (t) => {
  const { server, port } = await startServer(echoHandler);
  t.teardown(() => server.close());
  const client = await WireClient.open(port);
  t.teardown(() => client.destroy());
  client.write('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  t.equal((await client.response())?.headers.connection, 'keep-alive');
  client.write(`GET / HTTP/1.1\r\n${H}\r\n`);
  t.equal((await client.response())?.headers.connection, undefined, 'HTTP/1.1 default needs no header');
  client.write(`GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`);
  t.equal((await client.response())?.headers.connection, 'close');
});

t.test('Expect: 100-continue gets an interim answer before the body is sent', async (t) => {
  const { server, port } = await startServer(echoHandler);
  t.teardown(() => server.close());
  const client = await WireClient.open(port);
  t.teardown(() => client.destroy());
  client.write(`PUT / HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 4\r\n\r\n`);
  const interim = await client.response();
  t.equal(interim?.status, 100);
  client.write('body');
  const final = await client.response();
  t.equal(final?.status, 200);
  t.match(JSON.parse(final?.body.toString() ?? '{}'), { body: 'body' });
});

t.test('requests pipelined after Connection: close are not read', async (t) => {
  let handled = 0;
  const { server, port } = await startServer((request) => {
    handled++;
    request.respondText(200, 'ok');
  });
  t.teardown(() => server.close());
  const client = await WireClient.open(port);
  t.teardown(() => client.destroy());
  client.write(`GET /1 HTTP/1.1\r\n${H}Connection: close\r\n\r\nGET /2 HTTP/1.1\r\n${H}\r\n`);
  t.equal((await client.response())?.status, 200);
  t.ok(await client.closedWithin(2000));
  t.equal(handled, 1);
});
