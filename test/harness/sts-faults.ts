// A fault injector in front of the real STS emulator (moto), at the HTTP level, because
// a throttling error is an answer, not a byte delay. Switchable while traffic flows:
// - pass: the request goes to moto and moto's answer comes back;
// - delay: the request is held for `delayMs`, then passed (a slow STS);
// - throttle: answered at once with STS's own throttling error (HTTP 400, `Throttling`
//   in an ErrorResponse), as STS answers a caller over its request rate.
// With `accountLimit`, passing calls also take a token from one account-wide bucket
// and are throttled when there is none, as STS limits an account's call rate over all
// its callers (the fleet simulation's account). When moto is down, the client's
// connection is reset, as a load balancer with no backend would. With `lifetimeSeconds`, the Expiration moto grants is cut to that
// (STS granting less than asked), so renewals and expiry happen within a test run;
// everything else in the answer is moto's.

import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TokenBucket } from '../../lib/rate-limit.js';

export type StsMode = 'pass' | 'delay' | 'throttle';
export type StsOutcome = 'passed' | 'delayed' | 'throttled' | 'unreachable';

/** One call that reached the injector: when, which role and session, signed by which key for which region, and what the fault did to it. */
export interface StsCall {
  /** When the call arrived. */
  at: number;
  roleArn: string;
  sessionName: string;
  /** The access key the call was signed with (each simulated node has its own). */
  accessKeyId: string;
  /** The region of the SigV4 credential scope (`Credential=<key>/<date>/<region>/sts/aws4_request`). */
  region: string;
  outcome: StsOutcome;
}

export const THROTTLING_BODY =
  '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">\n' +
  '  <Error>\n    <Type>Sender</Type>\n    <Code>Throttling</Code>\n    <Message>Rate exceeded</Message>\n  </Error>\n' +
  '  <RequestId>00000000-0000-4000-8000-000000000000</RequestId>\n</ErrorResponse>\n';

export class StsFaultInjector {
  mode: StsMode = 'pass';
  delayMs = 2000;
  /** Granted lifetimes are cut to this many seconds; null leaves moto's Expiration. */
  lifetimeSeconds: number | null;
  readonly counts: Record<StsOutcome, number> = { passed: 0, delayed: 0, throttled: 0, unreachable: 0 };
  readonly calls: StsCall[] = [];
  private readonly target: { host: string; port: number };
  private readonly server: Server;

  private readonly accountLimit: TokenBucket | null;

  private constructor(target: { host: string; port: number }, lifetimeSeconds: number | null, accountLimit: TokenBucket | null) {
    this.target = target;
    this.lifetimeSeconds = lifetimeSeconds;
    this.accountLimit = accountLimit;
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  static async start(
    target: { host: string; port: number },
    options: { lifetimeSeconds?: number; accountLimit?: { perSecond: number; burst: number } } = {},
  ): Promise<StsFaultInjector> {
    const limit = options.accountLimit;
    const injector = new StsFaultInjector(
      target,
      options.lifetimeSeconds ?? null,
      limit === undefined ? null : new TokenBucket(limit.perSecond, limit.burst, Date.now()),
    );
    await new Promise<void>((resolve) => injector.server.listen(0, '127.0.0.1', resolve));
    return injector;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const at = Date.now();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const call = (outcome: StsOutcome): void => {
      this.counts[outcome]++;
      const scope = /Credential=([^/,]+)\/\d{8}\/([^/,]+)\/sts\//.exec(req.headers.authorization ?? '');
      const form = new URLSearchParams(body.toString('utf8'));
      this.calls.push({
        at,
        roleArn: form.get('RoleArn') ?? '',
        sessionName: form.get('RoleSessionName') ?? '',
        accessKeyId: scope?.[1] ?? '',
        region: scope?.[2] ?? '',
        outcome,
      });
    };
    // The mode when the request arrived decides, as it would at a real endpoint.
    const mode = this.mode === 'pass' && this.accountLimit !== null && !this.accountLimit.take(Date.now()) ? 'throttle' : this.mode;
    if (mode === 'throttle') {
      call('throttled');
      res.writeHead(400, { 'Content-Type': 'text/xml', 'x-amzn-RequestId': '00000000-0000-4000-8000-000000000000' });
      res.end(THROTTLING_BODY);
      return;
    }
    if (mode === 'delay') {
      call('delayed');
      await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      if (res.destroyed) return;
    }
    const headers = { ...req.headers };
    delete headers.connection;
    const upstream = request({ host: this.target.host, port: this.target.port, method: req.method, path: req.url, headers, agent: false }, (answer) => {
      const parts: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => parts.push(chunk));
      answer.on('error', () => res.destroy());
      answer.on('end', () => {
        if (mode !== 'delay') call('passed');
        const text = this.cutLifetime(Buffer.concat(parts).toString('utf8'));
        const out: Record<string, string> = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (typeof value === 'string' && !['content-length', 'connection', 'transfer-encoding', 'keep-alive'].includes(name)) out[name] = value;
        }
        out['content-length'] = String(Buffer.byteLength(text));
        res.writeHead(answer.statusCode ?? 502, out);
        res.end(text);
      });
    });
    upstream.on('error', () => {
      // moto is down: reset the caller's connection, no made-up answer.
      call('unreachable');
      res.destroy();
    });
    upstream.end(body);
  }

  private cutLifetime(xml: string): string {
    if (this.lifetimeSeconds === null) return xml;
    const limit = Date.now() + this.lifetimeSeconds * 1000;
    return xml.replace(/<Expiration>([^<]+)<\/Expiration>/, (whole, granted: string) => {
      const at = Date.parse(granted);
      return Number.isNaN(at) || at <= limit ? whole : `<Expiration>${new Date(limit).toISOString()}</Expiration>`;
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
