// TCP fault injectors in front of real servers (moto, kube-apiserver). Not fakes: every
// byte that passes still comes from the real server behind; the relay only adds the
// fault, switchable while traffic flows:
// - pass: bytes go through untouched;
// - delay: each chunk the client sends is held for `delayMs` first;
// - stall: new connections are accepted and read, and never answered (a hung server);
// - refuse(): nothing listens on the port any more (connection refused), and the live
//   connections are cut; resume() listens again on the same port;
// - cut(): every live connection is destroyed at once (a watch stream cut mid-flight).

import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export type RelayMode = 'pass' | 'delay' | 'stall';

export class FaultRelay {
  mode: RelayMode;
  delayMs: number;
  /** Connections accepted so far (for reports). */
  accepted = 0;
  private readonly target: { host: string; port: number };
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private port = 0;
  private listening = false;

  constructor(target: { host: string; port: number }, options: { mode?: RelayMode; delayMs?: number } = {}) {
    this.target = target;
    this.mode = options.mode ?? 'pass';
    this.delayMs = options.delayMs ?? 0;
    this.server = createServer((client) => this.relay(client));
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private relay(client: Socket): void {
    this.accepted++;
    this.track(client);
    if (this.mode === 'stall') {
      // Read and drop what the client sends, so it never blocks on a full window.
      client.on('data', () => {});
      client.on('error', () => client.destroy());
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    this.track(upstream);
    for (const socket of [client, upstream]) {
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    // A client gone has nothing more to receive; an upstream gone ends the client once
    // what it sent has been written (pipe), so an answer followed by a close is whole.
    client.on('close', () => upstream.destroy());
    client.on('data', (chunk: Buffer) => {
      if (this.mode === 'delay') setTimeout(() => upstream.write(chunk), this.delayMs);
      else upstream.write(chunk);
    });
    client.on('end', () => (this.mode === 'delay' ? setTimeout(() => upstream.end(), this.delayMs) : upstream.end()));
    upstream.pipe(client);
  }

  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.listening = true;
    return this;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get portNumber(): number {
    return this.port;
  }

  /** Live connections, both sides counted. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Destroys every live connection; new ones are still accepted. */
  cut(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** Stops listening (connection refused from now on) and cuts every live connection. */
  async refuse(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.cut();
    await closed;
  }

  /** Listens again on the same port, in pass mode. */
  async resume(): Promise<void> {
    this.mode = 'pass';
    if (!this.listening) await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.refuse();
  }
}

/** A relay that adds latency in front of a real server (moto as a slow STS). */
export class DelayingRelay extends FaultRelay {
  /** Relays a loopback port to `target`, holding each chunk the client sends for `delayMs`. */
  constructor(target: { host: string; port: number }, delayMs: number) {
    super(target, { mode: 'delay', delayMs });
  }
}
