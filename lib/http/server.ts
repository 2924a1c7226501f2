// The listening side of the engine: accepts connections up to a cap, runs the one
// timer that enforces every connection's timeouts, and shuts down gracefully.

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { AddressCounts } from './address-counts.js';
import { Connection, type ConnectionHost, type Handler } from './connection.js';
import { FEW_CONNECTIONS, HttpStats, httpOptions, type HttpServerOptions } from './options.js';
import type { Request } from './request.js';
import { Persistence, textResponse } from './response.js';

const BUSY = textResponse(503, 'too many connections\n').bytes(Persistence.Close, false);
const BUSY_ADDRESS = textResponse(503, 'too many connections from this address\n').bytes(Persistence.Close, false);

export interface HttpServerEvents {
  /** A handler threw; the request was answered 500. */
  onHandlerError?: (error: unknown, request: Request) => void;
  /** A request got its answer, `ms` after it was read (for stats). */
  onAnswered?: (request: Request, status: number, ms: number) => void;
}

export class HttpServer implements ConnectionHost {
  readonly options: HttpServerOptions;
  readonly handler: Handler;
  readonly stats = new HttpStats();
  shuttingDown = false;
  private readonly events: HttpServerEvents;
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  /** Open connections by client address. */
  private readonly perAddress = new AddressCounts();
  /** Connections beyond this count are admitted only for addresses holding fewer than FEW_CONNECTIONS. */
  private readonly unreserved: number;
  private sweep: NodeJS.Timeout | null = null;
  private closed: Promise<void> | null = null;
  private allClosed: (() => void) | null = null;

  constructor(handler: Handler, options: Partial<HttpServerOptions> = {}, events: HttpServerEvents = {}) {
    this.handler = handler;
    this.options = httpOptions(options);
    this.events = events;
    this.unreserved = this.options.maxConnections - Math.floor(this.options.maxConnections / 10);
    // allowHalfOpen: a client that half-closes after its request still gets the answer.
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  listen(port: number, host?: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.startSweep();
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  private accept(socket: Socket): void {
    const address = socket.remoteAddress ?? '';
    const refusal = this.refusal(address);
    if (refusal !== null) {
      this.stats.connectionsRejected++;
      socket.on('error', () => {});
      socket.end(refusal);
      socket.setTimeout(this.options.lingerTimeout, () => socket.destroy());
      return;
    }
    this.stats.connections++;
    this.perAddress.add(address);
    this.connections.add(new Connection(socket, this));
  }

  /** Why a new connection from `address` is refused, or null to admit it. */
  private refusal(address: string): Buffer | null {
    const open = this.connections.size;
    if (this.shuttingDown || open >= this.options.maxConnections) return BUSY;
    const mine = this.perAddress.of(address);
    if (mine >= this.options.maxConnectionsPerAddress) return BUSY_ADDRESS;
    // The reserve: past this, only addresses with few connections (pods, not floods) get in.
    if (open >= this.unreserved && mine >= FEW_CONNECTIONS) return BUSY_ADDRESS;
    return null;
  }

  connectionClosed(connection: Connection): void {
    if (!this.connections.delete(connection)) return;
    this.perAddress.remove(connection.remoteAddress);
    if (this.connections.size === 0 && this.allClosed !== null) this.allClosed();
  }

  answered(request: Request, status: number): void {
    const onAnswered = this.events.onAnswered;
    if (onAnswered !== undefined) onAnswered(request, status, performance.now() - request.startedAt);
  }

  handlerFailed(error: unknown, request: Request): void {
    this.stats.handlerErrors++;
    this.events.onHandlerError?.(error, request);
  }

  private startSweep(): void {
    const o = this.options;
    // Fine enough that every bound holds to within a quarter of the shortest one.
    const shortest = Math.min(o.headersTimeout, o.keepAliveTimeout, o.handlerTimeout, o.sendTimeout, o.lingerTimeout);
    const interval = Math.max(5, Math.min(1000, Math.floor(shortest / 4)));
    this.sweep = setInterval(() => {
      const now = performance.now();
      for (const connection of this.connections) connection.checkTimeouts(now);
    }, interval);
    this.sweep.unref();
  }

  /**
   * Stops accepting, lets in-flight requests be answered, closes idle connections, and
   * destroys whatever is still open after `graceMs`.
   */
  close(graceMs = 5_000): Promise<void> {
    if (this.closed !== null) return this.closed;
    this.shuttingDown = true;
    this.closed = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      const done = (): void => {
        if (timer !== null) clearTimeout(timer);
        if (this.sweep !== null) clearInterval(this.sweep);
        this.server.close(() => resolve());
      };
      this.allClosed = done;
      this.server.close();
      for (const connection of this.connections) connection.shutdown();
      if (this.connections.size === 0) {
        done();
        return;
      }
      timer = setTimeout(() => {
        for (const connection of this.connections) connection.destroy();
      }, graceMs);
      timer.unref();
    });
    return this.closed;
  }
}
