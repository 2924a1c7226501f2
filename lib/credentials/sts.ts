// AssumeRole through the AWS SDK. Region and endpoint come from the standard settings
// (AWS_REGION, AWS_ENDPOINT_URL_STS / AWS_ENDPOINT_URL), the proxy's own identity from
// the default credential chain, over keep-alive connections.

import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { AssumedCredentials } from './document.js';

export interface AssumeRoleRequest {
  roleArn: string;
  sessionName: string;
  /** Sent as ExternalId when not null. */
  externalId: string | null;
  durationSeconds: number;
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
      maxAttempts: options.maxAttempts ?? 3,
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
        connectionTimeout: options.connectionTimeoutMs ?? 2000,
        requestTimeout: options.requestTimeoutMs ?? 5000,
      }),
    });
  }

  async assumeRole(request: AssumeRoleRequest): Promise<AssumedCredentials> {
    let out;
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

function toAssumeRoleError(error: unknown): AssumeRoleError {
  if (error instanceof AssumeRoleError) return error;
  const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const message = (e.message ?? String(error)).split('\n')[0] ?? '';
  return new AssumeRoleError(e.name ?? 'Error', message, e.$metadata?.httpStatusCode);
}
