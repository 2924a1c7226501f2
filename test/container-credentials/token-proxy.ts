// What the container-credentials tests share: a real kube-apiserver and moto, the
// proxy started in-process with the endpoint on a loopback address, and one request to
// that endpoint as an SDK sends it.

import type { Test } from 'tap';
import { request } from 'node:http';
import { startApp, type App } from '../../lib/app.js';
import { parseArgs } from '../../lib/config.js';
import { createLogger } from '../../lib/log.js';
import { configOf } from '../harness/config.js';
import { KubernetesControlPlane } from '../harness/kubernetes.js';
import { LogCapture } from '../harness/log-lines.js';
import { MotoServer } from '../harness/moto.js';
import { CLOSED_ADDRESS, freePort } from '../harness/ports.js';

export const ACCOUNT = '123456789012';
export const BASE = `arn:aws:iam::${ACCOUNT}:role/`;
export const AUDIENCE = 'kube2iam';

/** The API server and moto for a test file, stopped at its end; the proxy's STS client gets explicit keys and moto's endpoint. */
export async function tokenCluster(t: Test): Promise<{ plane: KubernetesControlPlane; moto: MotoServer }> {
  const plane = await KubernetesControlPlane.start();
  const moto = await MotoServer.start();
  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'AKIDNODE',
    AWS_SECRET_ACCESS_KEY: 'node',
    AWS_ENDPOINT_URL_STS: moto.endpoint,
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  t.teardown(async () => {
    process.env = saved;
    await plane.stop();
    await moto.stop();
  });
  return { plane, moto };
}

export interface TokenProxy {
  app: App;
  /** The endpoint's address and port. */
  address: string;
  port: number;
  /** The metadata path's port. */
  appPort: number;
  log: LogCapture;
  statsOut: LogCapture;
}

/**
 * The proxy with /v1/credentials on `address` (a loopback address: the machine's own
 * links are left alone), its API connection first in `flags` (`plane.programConnection()`
 * or another identity's), then the test's own flags; stopped at the test's end.
 */
export async function startTokenProxy(t: Test, address: string, flags: string[]): Promise<TokenProxy> {
  const port = await freePort();
  const appPort = await freePort();
  const log = new LogCapture();
  const statsOut = new LogCapture();
  const config = configOf(
    await parseArgs([
      '--app-port',
      String(appPort),
      '--metadata-addr',
      CLOSED_ADDRESS,
      '--base-role-arn',
      BASE,
      '--stats-interval',
      '0',
      '--log-format',
      'json',
      '--container-credentials',
      '--container-credentials-port',
      String(port),
      '--container-credentials-link=',
      '--container-credentials-addresses',
      address,
      ...flags,
    ]),
  );
  const app = await startApp(config, createLogger({ logLevel: 'info', logFormat: 'json' }, log), { host: '127.0.0.1', statsOut });
  t.teardown(() => app.close());
  await app.source.whenSynced();
  return { app, address, port, appPort, log, statsOut };
}

export interface EndpointAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, string>;
}

/** One GET /v1/credentials as an SDK sends it (the token as the Authorization header), on a connection of its own. */
export function askEndpoint(
  proxy: Pick<TokenProxy, 'address' | 'port'>,
  token: string | undefined,
  options: { host?: string; path?: string; method?: string; from?: string } = {},
): Promise<EndpointAnswer> {
  const headers: Record<string, string> = { host: options.host ?? `${proxy.address}:${proxy.port}` };
  if (token !== undefined) headers.authorization = token;
  const target = {
    host: proxy.address,
    port: proxy.port,
    path: options.path ?? '/v1/credentials',
    method: options.method ?? 'GET',
    headers,
    agent: false,
    localAddress: options.from,
  };
  return new Promise((resolve, reject) => {
    const req = request(target, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, string>) }),
      );
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', reject);
    req.end();
  });
}
