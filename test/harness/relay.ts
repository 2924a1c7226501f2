// A TCP relay that adds latency in front of a real server (moto as a slow STS). A fault
// injector, not a fake: every byte still comes from the real server behind it.

import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export class DelayingRelay {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  /** Relays a loopback port to `target`, holding each chunk the client sends for `delayMs`. */
  constructor(target: { host: string; port: number }, delayMs: number) {
    this.server = createServer((client) => {
      const upstream = connect(target.port, target.host);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (chunk: Buffer) => setTimeout(() => upstream.write(chunk), delayMs));
      client.on('end', () => setTimeout(() => upstream.end(), delayMs));
      upstream.pipe(client);
    });
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
