// Three servers that answer every request with the same 1.2 KB response, for the HTTP
// engine benchmark: this project's engine, node:http, and a floor that does nothing but
// find the end of each header block and write the bytes.
//   node fixed-response.js engine|node-http|floor PORT   (HOST: listen address, default 127.0.0.1)

import { createServer as createNetServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { HttpServer, PreparedResponse } from '../../lib/http/index.js';
import { Persistence } from '../../lib/http/response.js';

const BODY = JSON.stringify({ Code: 'Success', Padding: 'x'.repeat(1160) });
const CONTENT_TYPE = 'application/json';
const HOST = process.env.HOST ?? '127.0.0.1';

async function main(): Promise<void> {
  const [kind, portArg] = process.argv.slice(2);
  const port = Number(portArg);
  switch (kind) {
    case 'engine': {
      const prepared = new PreparedResponse(200, [['Content-Type', CONTENT_TYPE]], BODY);
      const server = new HttpServer((request) => request.send(prepared));
      await server.listen(port, HOST);
      break;
    }
    case 'node-http': {
      const body = Buffer.from(BODY);
      const server = createHttpServer((_req, res) => {
        res.writeHead(200, { 'Content-Type': CONTENT_TYPE, 'Content-Length': body.length });
        res.end(body);
      });
      server.keepAliveTimeout = 5000;
      await new Promise<void>((resolve) => server.listen(port, HOST, resolve));
      break;
    }
    case 'floor': {
      const prepared = new PreparedResponse(200, [['Content-Type', CONTENT_TYPE]], BODY);
      const response = prepared.bytes(Persistence.KeepAlive11, false);
      const closing = prepared.bytes(Persistence.Close, false);
      const server = createNetServer({ noDelay: true }, (socket) => {
        socket.on('data', (chunk: Buffer) => {
          // A client that asks for the close (the new-connection scenario) gets it, said.
          if (chunk.includes('Connection: close')) {
            socket.end(closing);
            return;
          }
          let at = chunk.indexOf('\r\n\r\n');
          while (at !== -1) {
            socket.write(response);
            at = chunk.indexOf('\r\n\r\n', at + 4);
          }
        });
        socket.on('error', () => socket.destroy());
      });
      await new Promise<void>((resolve) => server.listen(port, HOST, resolve));
      break;
    }
    default:
      throw new Error(`unknown server kind ${kind}`);
  }
  process.on('SIGINT', () => process.exit(0)); // lets --cpu-prof write its profile
  process.stdout.write('ready\n');
}

void main();
