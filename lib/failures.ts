// What each failure tells the operator: one line naming what failed, for whom, why, and
// what to do, folded per key by the FailureLog so a failing node does not flood its log.

import { isThrottling, stsRemedy } from './credentials/sts.js';
import type { StsFailure } from './credentials/store.js';
import type { FailureLog } from './failure-log.js';
import { errorText } from './log.js';
import { ApiError } from './pods/kubernetes.js';

/** Pods named in a failure's line at most (the count is always there). */
export const PODS_NAMED = 5;

export function reportStsFailure(log: FailureLog, failure: StsFailure, podsOf: (key: string) => string[]): void {
  const { key, parameters, code, message } = failure;
  log.report(`sts ${key}`, isThrottling(code) ? 'warn' : 'error', 'AssumeRole failed; the pods using this role get 500 until it succeeds', () => ({
    role: parameters.roleArn,
    session: parameters.sessionName,
    ...(parameters.externalId === null ? {} : { externalId: true }),
    code,
    error: message,
    pods: failure.pods,
    podNames: podsOf(key),
    failuresInARow: failure.failures,
    retryInMs: failure.retryInMs,
    remedy: stsRemedy(code),
  }));
}

export function reportWatchFailure(log: FailureLog, error: unknown, failure: { resource: string; restarts: number; retryInMs: number }): void {
  const status = error instanceof ApiError ? error.statusCode : null;
  const remedy =
    status === 401 || status === 403
      ? "the API server refuses the proxy's ServiceAccount: it needs get, list and watch on pods and namespaces, and serviceaccounts with --service-account-roles (manifests/rbac.yaml)"
      : 'the API server cannot be reached or cut the watch: requests are answered from the last known pods; a pod started meanwhile waits for its IP (--backoff-max-elapsed-time) and gets 404';
  log.report(`watch ${failure.resource}`, 'warn', 'Kubernetes list or watch failed; retrying', () => ({
    resource: failure.resource,
    ...(status === null ? {} : { status }),
    error: errorText(error),
    restarts: failure.restarts,
    retryInMs: failure.retryInMs,
    remedy,
  }));
}

export function reportPodsFileFailure(log: FailureLog, file: string, error: unknown): void {
  log.report('pods file', 'error', 'pods file not reloaded; serving the pods it held before', () => ({
    file,
    error: errorText(error),
    remedy: 'fix the file: kubectl get pods,namespaces -o yaml writes the expected shape',
  }));
}

export function reportUpstreamFailure(log: FailureLog, metadata: string, failure: { path: string; timedOut: boolean; error: unknown }): void {
  log.report(
    `upstream ${failure.timedOut}`,
    'warn',
    failure.timedOut ? 'metadata service did not answer in time; the pod got 502' : 'metadata service request failed; the pod got 502',
    () => ({
      metadata,
      path: failure.path.slice(0, 200),
      error: errorText(failure.error),
      remedy: 'the proxy passes paths other than credentials to --metadata-addr: check the node reaches it (hop limit, IMDS enabled)',
    }),
  );
}

export function reportTokenReviewFailure(log: FailureLog, error: unknown): void {
  const status = error instanceof ApiError ? error.statusCode : null;
  const remedy =
    status === 401 || status === 403
      ? "the API server refuses the proxy's ServiceAccount: it needs create on tokenreviews (manifests/components/container-credentials grants it)"
      : 'the API server cannot be reached: pods whose tokens were reviewed before are still served, new tokens get 503 until it answers';
  log.report('token review', 'error', 'TokenReview failed; the pod presenting a new token got 503', () => ({
    ...(status === null ? {} : { status }),
    error: errorText(error),
    remedy,
  }));
}
