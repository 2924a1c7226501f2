// The Kubernetes API as the proxy uses it: paged lists and watches of pods, namespaces and
// service accounts, and token reviews, over one undici pool, as raw JSON. Lean on
// purpose: in a cluster (the image's path) nothing else is loaded, where
// @kubernetes/client-node's generated API would hold about 30 MB of heap the proxy never
// uses (benchmarks/RESULTS.md, memory by component). A kubeconfig still goes through
// client-node, imported only then, for its exec and auth-provider plugins.
//
// The connection, as kube2iam makes it: --kubeconfig wins, then --api-server with
// --api-token, else the in-cluster service account.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { Pool } from '../undici.js';
import type { LiveClaims } from './callers.js';
import type { ReviewToken, TokenReviewStatus } from './token-review.js';
import { podRecord, type AnnotationKeys, type PodObject } from './pod.js';

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** The kubelet rewrites a projected token well before it expires; client-go re-reads it each minute too. */
const TOKEN_REREAD_MS = 60_000;
/** A watch event (one object) larger than this is refused: etcd bounds objects at 1.5 MiB. */
const MAX_EVENT_BYTES = 4 * 1024 * 1024;
/** What an error answer's body is read for its message. */
const MAX_ERROR_BODY = 4096;

export interface KubernetesConnection {
  kubeconfig: string | null;
  apiServer: string | null;
  apiToken: string | null;
  /** Skip TLS verification of the API server (testing only). */
  insecure: boolean;
}

/** Where the API server is, and the headers that authenticate a request to it. */
export interface ApiEndpoint {
  /** The server's URL, possibly with a path prefix (an API proxy's). */
  server: string;
  tls: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; rejectUnauthorized: boolean; servername?: string };
  /** Headers for the next request: credentials rotate, so asked each time. */
  headers(): Promise<Record<string, string>>;
  /** The API server refused the credentials: read them afresh next time. */
  refused(): void;
}

/** A Kubernetes API answer other than 2xx, with the Status message the server gave. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export async function connectKubernetes(connection: KubernetesConnection, serviceAccountDir = SERVICE_ACCOUNT_DIR): Promise<KubernetesApi> {
  return new KubernetesApi(await resolveEndpoint(connection, serviceAccountDir));
}

export async function resolveEndpoint(connection: KubernetesConnection, serviceAccountDir: string): Promise<ApiEndpoint> {
  if (connection.kubeconfig !== null) return kubeconfigEndpoint(connection.kubeconfig, connection.insecure);
  if (connection.apiServer !== null && connection.apiToken !== null) {
    return bearerEndpoint(connection.apiServer, connection.apiToken, { rejectUnauthorized: !connection.insecure });
  }
  return inClusterEndpoint(serviceAccountDir, connection.insecure);
}

/** A fixed bearer token (--api-token). */
export function bearerEndpoint(server: string, token: string, tls: ApiEndpoint['tls']): ApiEndpoint {
  const headers = { authorization: `Bearer ${token}` };
  return { server, tls, headers: () => Promise.resolve(headers), refused: () => {} };
}

/** The pod's service account: the token re-read as the kubelet rotates it, the cluster's CA. */
function inClusterEndpoint(dir: string, insecure: boolean): ApiEndpoint {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  const tokenFile = join(dir, 'token');
  if (host === undefined || host === '' || port === undefined || port === '' || !existsSync(tokenFile)) {
    throw new Error('not running in a Kubernetes cluster (no KUBERNETES_SERVICE_HOST or service account token)');
  }
  const ca = readFileSync(join(dir, 'ca.crt'));
  let token = '';
  let readAt = -Infinity;
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    tls: { ca, rejectUnauthorized: !insecure },
    headers: () => {
      const now = Date.now();
      if (now - readAt >= TOKEN_REREAD_MS) {
        token = readFileSync(tokenFile, 'utf8').trim();
        readAt = now;
      }
      return Promise.resolve({ authorization: `Bearer ${token}` });
    },
    refused: () => {
      readAt = -Infinity;
    },
  };
}

interface HttpsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized?: boolean;
  servername?: string;
  headers?: Record<string, string>;
  auth?: string;
}

/** A kubeconfig's current context, through client-node (exec and auth-provider plugins included). */
async function kubeconfigEndpoint(path: string, insecure: boolean): Promise<ApiEndpoint> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error(`${path}: no current cluster`);
  const options = async (): Promise<HttpsOptions> => {
    const opts: HttpsOptions = {};
    await kc.applyToHTTPSOptions(opts as never);
    return opts;
  };
  const first = await options();
  return {
    server: cluster.server,
    tls: { ca: first.ca, cert: first.cert, key: first.key, servername: first.servername, rejectUnauthorized: !insecure && first.rejectUnauthorized !== false },
    headers: async () => {
      const opts = await options();
      const headers: Record<string, string> = { ...opts.headers };
      if (opts.auth !== undefined) headers.authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
      return headers;
    },
    refused: () => {},
  };
}

/** One page of a list: raw items and where to continue. */
export interface ListPage {
  items: unknown[];
  resourceVersion: string;
  continueToken: string | undefined;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface WatchEvent {
  type: string;
  object: unknown;
}

interface ListObject {
  items?: unknown[] | null;
  metadata?: { resourceVersion?: string; continue?: string };
}

export class KubernetesApi {
  private readonly endpoint: ApiEndpoint;
  private readonly pool: Pool;
  private readonly basePath: string;

  constructor(endpoint: ApiEndpoint) {
    this.endpoint = endpoint;
    const url = new URL(endpoint.server);
    this.basePath = url.pathname.replace(/\/+$/, '');
    // Three watches, a list, the rate-limited live reads and token reviews at once, at most.
    this.pool = new Pool(url.origin, { connections: 8, connect: { ...endpoint.tls, timeout: 10_000 }, headersTimeout: 30_000, bodyTimeout: 60_000 });
  }

  async list(path: string, query: Query): Promise<ListPage> {
    const { body } = await this.request(path, query, undefined, 60_000);
    const list = JSON.parse(await body.text()) as ListObject;
    return { items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion ?? '', continueToken: list.metadata?.continue || undefined };
  }

  /**
   * Streams a watch's events to `onEvent` until the server ends it (resolves) or it fails,
   * `signal` aborts it, or `onEvent` throws (rejects).
   */
  async watch(path: string, query: Query, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const { body } = await this.request(path, { ...query, watch: true }, signal, 0);
    const decoder = new StringDecoder('utf8');
    let pending = '';
    try {
      for await (const chunk of body) {
        pending += decoder.write(chunk as Buffer);
        for (let newline = pending.indexOf('\n'); newline !== -1; newline = pending.indexOf('\n')) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          if (line.trim() !== '') onEvent(JSON.parse(line) as WatchEvent);
        }
        if (pending.length > MAX_EVENT_BYTES) throw new Error(`watch event over ${MAX_EVENT_BYTES} bytes`);
      }
    } finally {
      if (!body.destroyed) body.destroy();
    }
  }

  /**
   * Creates an object and returns the server's answer (a review's status, for the
   * TokenReview and SubjectAccessReview kinds, which are never stored).
   */
  async create(path: string, object: unknown, timeoutMs: number): Promise<unknown> {
    const { body } = await this.request(path, {}, AbortSignal.timeout(timeoutMs), timeoutMs, JSON.stringify(object));
    return JSON.parse(await body.text()) as unknown;
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }

  private async request(path: string, query: Query, signal: AbortSignal | undefined, bodyTimeout: number, body?: string) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) if (value !== undefined && value !== '') search.set(name, String(value));
    const headers: Record<string, string> = { ...(await this.endpoint.headers()), accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await this.pool.request({
      method: body === undefined ? 'GET' : 'POST',
      path: `${this.basePath}${path}?${search.toString()}`,
      headers,
      body,
      signal,
      bodyTimeout,
    });
    if (response.statusCode >= 200 && response.statusCode < 300) return response;
    if (response.statusCode === 401) this.endpoint.refused();
    throw new ApiError(response.statusCode, `${path}: ${response.statusCode} ${await statusMessage(response.body)}`);
  }
}

/** The Status message of an error answer, read within a bound. */
async function statusMessage(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  let text = '';
  for await (const chunk of body) {
    text += chunk.toString('utf8');
    if (text.length >= MAX_ERROR_BODY) break;
  }
  body.destroy();
  try {
    const status = JSON.parse(text) as { message?: unknown };
    if (typeof status.message === 'string') return status.message;
  } catch {
    // Not a Status: the text as it came.
  }
  return text.slice(0, 200).trim();
}

/**
 * The pods that hold an IP now, by a consistent list from the API server (not the watch,
 * which may lag behind): for a terminating owner's IP and --resolve-duplicate-cache-ips.
 */
export function liveClaims(api: KubernetesApi, keys: AnnotationKeys): LiveClaims {
  return async (ip) => {
    const pods = (await api.list('/api/v1/pods', { fieldSelector: `status.podIP=${ip}` })).items;
    return pods.flatMap((p) => podRecord(p as PodObject, keys) ?? []);
  };
}

/** A TokenReview answers within this, or the pod is told to retry. */
const TOKEN_REVIEW_TIMEOUT_MS = 2_000;

/** Asks the API server who a token belongs to, for `audience` (never the server's own: spec.audiences is always set). */
export function tokenReviews(api: KubernetesApi): ReviewToken {
  return async (token, audience) => {
    const review = (await api.create(
      '/apis/authentication.k8s.io/v1/tokenreviews',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [audience] } },
      TOKEN_REVIEW_TIMEOUT_MS,
    )) as { status?: TokenReviewStatus } | null;
    return review?.status;
  };
}
