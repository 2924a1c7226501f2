// AssumeRole through the AWS SDK. Region and endpoint come from the standard settings
// (AWS_REGION, AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL), the proxy's own identity from
// the default credential chain, over keep-alive connections. The SDK retries a call
// that was lost (a reset connection, a timeout, a 5xx) but never one STS throttled or
// refused: those go back to the credential store at once, which paces the node (a
// hidden retry would be a second call into the throttled account, unseen by the pacing).

import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { AssumeRoleCommand, STSClient, type AssumeRoleCommandOutput } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { RetryErrorInfo, RetryStrategyV2, RetryToken } from '@smithy/types';

export interface AssumeRoleRequest {
  roleArn: string;
  sessionName: string;
  /** Sent as ExternalId when not null. */
  externalId: string | null;
  durationSeconds: number;
}

export interface AssumedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

/** What the credential store needs from STS. */
export interface RoleAssumer {
  assumeRole(request: AssumeRoleRequest): Promise<AssumedCredentials>;
  close(): void;
}

/** An AssumeRole that failed, with STS's error code (AccessDenied, Throttling, ...). */
export class AssumeRoleError extends Error {
  readonly code: string;
  readonly status: number | undefined;
  constructor(code: string, message: string, status?: number) {
    super(`${code}: ${message}`);
    this.code = code;
    this.status = status;
  }
}

export interface StsOptions {
  region?: string;
  /** Overrides the endpoint; normally left to AWS_ENDPOINT_URL_STS or the regional default. */
  endpoint?: string;
  /** Normally left to the default chain (the node's instance profile); tests pass keys. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  maxAttempts?: number;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxSockets?: number;
}

export class StsRoleAssumer implements RoleAssumer {
  private readonly client: STSClient;

  constructor(options: StsOptions = {}) {
    const maxSockets = options.maxSockets ?? 32;
    this.client = new STSClient({
      region: options.region,
      endpoint: options.endpoint,
      credentials: options.credentials,
      retryStrategy: lostCallRetry(options.maxAttempts ?? 3),
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
        connectionTimeout: options.connectionTimeoutMs ?? 2000,
        requestTimeout: options.requestTimeoutMs ?? 5000,
      }),
    });
  }

  async assumeRole(request: AssumeRoleRequest): Promise<AssumedCredentials> {
    let out: AssumeRoleCommandOutput;
    try {
      out = await this.client.send(
        new AssumeRoleCommand({
          RoleArn: request.roleArn,
          RoleSessionName: request.sessionName,
          DurationSeconds: request.durationSeconds,
          ...(request.externalId === null ? {} : { ExternalId: request.externalId }),
        }),
      );
    } catch (error) {
      throw toAssumeRoleError(error);
    }
    const c = out.Credentials;
    if (c?.AccessKeyId === undefined || c.SecretAccessKey === undefined || c.SessionToken === undefined || c.Expiration === undefined) {
      throw new AssumeRoleError('InvalidResponse', 'STS answered without complete credentials');
    }
    return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration };
  }

  close(): void {
    this.client.destroy();
  }
}

const RETRY_DELAY_MS = 100;

/** Retries only calls lost on the way (TRANSIENT, SERVER_ERROR), after 50..100 ms. */
function lostCallRetry(maxAttempts: number): RetryStrategyV2 {
  const token = (count: number): RetryToken => ({ getRetryCount: () => count, getRetryDelay: () => 0 });
  return {
    acquireInitialRetryToken: async () => token(0),
    refreshRetryTokenForRetry: async (previous: RetryToken, info: RetryErrorInfo) => {
      const count = previous.getRetryCount() + 1;
      if (count >= maxAttempts || (info.errorType !== 'TRANSIENT' && info.errorType !== 'SERVER_ERROR')) throw new Error('not retried');
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS / 2 + (Math.random() * RETRY_DELAY_MS) / 2));
      return token(count);
    },
    recordSuccess: () => undefined,
  };
}

function toAssumeRoleError(error: unknown): AssumeRoleError {
  if (error instanceof AssumeRoleError) return error;
  const e = error as { name?: string; code?: unknown; message?: string; $metadata?: { httpStatusCode?: number } };
  const message = (e.message ?? String(error)).split('\n')[0] ?? '';
  // A socket error (ECONNREFUSED, ENOTFOUND) says more than its class name, Error.
  const generic = e.name === undefined || e.name === 'Error';
  const code = generic && /region is missing/i.test(message) ? 'RegionMissing' : generic && typeof e.code === 'string' ? e.code : (e.name ?? 'Error');
  return new AssumeRoleError(code, message, e.$metadata?.httpStatusCode);
}

const THROTTLING = new Set(['Throttling', 'ThrottlingException', 'RequestLimitExceeded']);

/** STS refused for the account's call rate: it clears by itself. */
export function isThrottling(code: string): boolean {
  return THROTTLING.has(code);
}

/** What an operator can do about an AssumeRole failure, for its log line. */
export function stsRemedy(code: string): string {
  if (isThrottling(code))
    return "STS is throttling this account: this node's STS rate is cut and regained slowly, pods' own requests go first; on a large fleet widen --prefetch-window or lower --sts-rate-limit (README: Sizing for a fleet)";
  switch (code) {
    case 'RegionMissing':
      return 'no region: set AWS_REGION in the DaemonSet, or let the proxy read placement/region from the metadata service';
    case 'AccessDenied':
      return "the role's trust policy must allow the node's role to call sts:AssumeRole (and the node's role must be allowed sts:AssumeRole on it)";
    case 'InvalidClientTokenId':
    case 'SignatureDoesNotMatch':
    case 'ExpiredToken':
    case 'IncompleteSignature':
      return "STS refuses the proxy's own credentials: check the node's instance profile, or the AWS_* credentials given to the DaemonSet";
    case 'CredentialsProviderError':
      return "the proxy has no AWS credentials of its own: it takes the node's instance profile from the metadata service (--metadata-addr) or AWS_* variables";
    case 'RegionDisabledException':
      return 'STS is not activated in this region for the account: activate it in IAM account settings, or set AWS_REGION';
    case 'ValidationError':
    case 'MalformedPolicyDocument':
      return "STS refused the request as invalid: check the role ARN in the pod's annotation and its external ID";
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'ETIMEDOUT':
    case 'ECONNRESET':
    case 'TimeoutError':
      return "STS cannot be reached from the node: check AWS_REGION, AWS_ENDPOINT_URL_STS, the node's egress (VPC endpoint, proxy) and DNS";
    default:
      return 'the proxy retries with back-off; the error says what STS refused';
  }
}
