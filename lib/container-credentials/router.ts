// The container-credentials endpoint (GET /v1/credentials), as the EKS Pod Identity
// Agent serves it and the SDKs' HTTP credential providers call it: the caller presents
// its projected ServiceAccount token in Authorization, the API server says which pod it
// was issued for (TokenReview), and that pod gets its own credentials. The source
// address plays no part, so a reused IP cannot confuse it.
// - Host must name the endpoint's own address (as the agent checks): a page a pod's
//   browser-like client loads through DNS rebinding cannot reach it;
// - the pod must be on this node now (the index, on every request: a kept review never
//   outlives its pod), with the namespace and name the token names;
// - a token presented from another pod's address is refused: a token copied out of its
//   pod is worth nothing from another. The address only ever refuses; an address no pod
//   claims (the node's own, a pod not yet indexed) leaves the token to speak alone;
// - its role is the one PodRoles decided for it, the same as the metadata path's.

import { answerAfterFetch, type CredentialEntry } from '../credentials/store.js';
import type { Handler, PreparedResponse, Request } from '../http/index.js';
import { normalizeIp } from '../pods/ip.js';
import type { PodIndex } from '../pods/pod-index.js';
import type { PodRecord } from '../pods/pod.js';
import type { PodRoles } from '../pods/pod-roles.js';
import type { TokenReviewer, TokenVerdict } from '../pods/token-review.js';
import { containerError, PreparedDocuments } from './documents.js';

export const CREDENTIALS_PATH = '/v1/credentials';

/** What served a request, for the stats line. */
export enum ContainerRoute {
  Invalid,
  Credentials,
  Refused,
  Unavailable,
}
export const CONTAINER_ROUTE_NAMES: readonly string[] = ['invalid', 'credentials', 'refused', 'unavailable'];

const NOT_FOUND = containerError(404, 'NotFound', `only GET ${CREDENTIALS_PATH} is served here`);
const GET_ONLY = containerError(405, 'MethodNotAllowed', 'only GET is served here', [['Allow', 'GET, HEAD']]);
const BAD_HOST = containerError(400, 'InvalidHost', 'the Host header must name the credentials endpoint');
const NO_TOKEN = containerError(401, 'MissingToken', 'no service account token in the Authorization header');
const NOT_READY = containerError(503, 'CredentialsNotReady', 'credentials not fetched yet; retry', [['Retry-After', '1']]);
const NOT_ELIGIBLE = containerError(403, 'AccessDenied', 'the pod cannot use credentials (it has finished)');

const REFUSED_CODES: Record<401 | 403, string> = { 401: 'InvalidToken', 403: 'AccessDenied' };

export interface ContainerRouterDependencies {
  /** Why the proxy cannot serve yet (pods not listed, shutting down), or null. */
  unavailable: () => string | null;
  reviewer: TokenReviewer;
  index: PodIndex;
  podRoles: PodRoles;
  /** A pod asked and its credentials are not there: fetch them first (the store's `demand`). */
  demand: (entry: CredentialEntry) => Promise<void> | null;
}

export interface ContainerRouterOptions {
  /** The Host values a request may carry: the endpoint's addresses, with their port. */
  hosts: ReadonlySet<string>;
  /** How long a token's pod may take to reach the index (--backoff-max-elapsed-time). */
  podWaitMs: number;
}

/** The Host values of an endpoint listening on these addresses and port (lower case). */
export function endpointHosts(addresses: readonly string[], port: number): Set<string> {
  const hosts = new Set<string>();
  for (const address of addresses) {
    const host = address.includes(':') ? `[${address.toLowerCase()}]` : address;
    hosts.add(`${host}:${port}`);
    if (port === 80) hosts.add(host);
  }
  return hosts;
}

export function createContainerRouter(deps: ContainerRouterDependencies, options: ContainerRouterOptions): Handler {
  const { reviewer, index, podRoles, demand } = deps;
  const documents = new PreparedDocuments();

  const refuse = (request: Request, status: 401 | 403 | 503, message: string): void => {
    request.route = status === 503 ? ContainerRoute.Unavailable : ContainerRoute.Refused;
    const code = status === 503 ? 'ServiceUnavailable' : REFUSED_CODES[status];
    request.send(containerError(status, code, message, status === 503 ? [['Retry-After', '1']] : []));
  };

  const answer = (request: Request, verdict: TokenVerdict): void => {
    if (verdict.kind !== 'pod') {
      refuse(request, verdict.kind === 'refused' ? verdict.status : 503, verdict.reason);
      return;
    }
    const pod = index.get(verdict.podUid);
    if (pod !== undefined) {
      answerPod(request, verdict, pod);
      return;
    }
    // Created a moment ago: the token can be older than the watch event that brings its pod.
    index
      .waitForPod(verdict.podUid, options.podWaitMs)
      .then(() => answerPod(request, verdict, index.get(verdict.podUid)))
      .catch((error: unknown) => request.fail(error));
  };

  const answerPod = (request: Request, verdict: Extract<TokenVerdict, { kind: 'pod' }>, pod: PodRecord | undefined): void => {
    if (pod === undefined || pod.namespace !== verdict.namespace || pod.name !== verdict.podName) {
      refuse(request, 403, `pod ${verdict.namespace}/${verdict.podName} is not on this node`);
      return;
    }
    const caller = normalizeIp(request.remoteAddress);
    const claim = caller === null ? undefined : index.lookup(caller);
    if (claim !== undefined && !claim.claimants.some((claimant) => claimant.uid === pod.uid)) {
      refuse(request, 403, `the token of pod ${pod.namespace}/${pod.name} was presented from ${caller}, another pod's address`);
      return;
    }
    // PodRoles decides which pods may use credentials (running ones, here the host
    // network's too: a token, not an address, names them).
    const podRole = podRoles.roleOf(pod.uid);
    if (podRole === undefined) {
      request.route = ContainerRoute.Refused;
      request.send(NOT_ELIGIBLE);
      return;
    }
    if (podRole.kind === 'none') {
      refuse(request, 403, podRole.reason);
      return;
    }
    const entry = podRole.entry;
    if (entry.current(Date.now()) !== null) request.send(answerNow(entry));
    else
      answerAfterFetch(
        entry,
        demand,
        () => request.send(answerNow(entry)),
        (error) => request.fail(error),
      );
  };

  /** The entry's credentials, else its last STS error (the code only), else not yet. */
  const answerNow = (entry: CredentialEntry): PreparedResponse => {
    const current = entry.current(Date.now());
    if (current !== null) return documents.credentials(current, entry.parameters.roleArn);
    if (entry.errorCode === null) return NOT_READY;
    return containerError(500, 'CredentialsUnavailable', `STS answered ${entry.errorCode}`);
  };

  return (request) => {
    request.route = ContainerRoute.Invalid;
    const refusal = requestRefusal(request, options.hosts);
    if (refusal !== null) {
      request.send(refusal);
      return;
    }
    const reason = deps.unavailable();
    if (reason !== null) {
      refuse(request, 503, reason);
      return;
    }
    request.route = ContainerRoute.Credentials;
    const caller = normalizeIp(request.remoteAddress);
    const callerIsPod = caller !== null && index.lookup(caller) !== undefined;
    const verdict = reviewer.verify(bearer(request.header('authorization')), request.remoteAddress, callerIsPod, Date.now());
    if (verdict instanceof Promise) verdict.then((v) => answer(request, v)).catch((error: unknown) => request.fail(error));
    else answer(request, verdict);
  };
}

/** What is wrong with the request itself, before its token is looked at; null when nothing is. */
function requestRefusal(request: Request, hosts: ReadonlySet<string>): PreparedResponse | null {
  if (!request.valid || request.path !== CREDENTIALS_PATH || request.query !== '') return NOT_FOUND;
  if (request.method !== 'GET' && request.method !== 'HEAD') return GET_ONLY;
  if (!hosts.has(request.header('host')?.toLowerCase() ?? '')) return BAD_HOST;
  return request.header('authorization') === undefined ? NO_TOKEN : null;
}

/** The token as the SDKs send it (the file's content, no scheme), or after `Bearer `. */
function bearer(value: string | undefined): string {
  const text = value?.trim() ?? '';
  return /^bearer /i.test(text) ? text.slice(7).trim() : text;
}
