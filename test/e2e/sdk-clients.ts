// Real AWS clients run in a pod's network namespace with the SDKs' defaults, so each one
// calls http://169.254.169.254 and is DNATed to the proxy. Each run is summed up as a
// ClientReport: what credentials it ended with, the caller identity STS gave them, and
// the metadata requests it made.

import { join } from 'node:path';
import { CLIENTS, POD_STS_ENDPOINT, type Pod } from './node.js';

export interface MetadataRequest {
  method: string;
  path: string;
  /** Whether it carried X-aws-ec2-metadata-token (unknown for the aws CLI). */
  token?: boolean;
  status: number | null;
}

export interface ClientReport {
  client: 'botocore' | 'aws-cli' | 'smithy';
  exit: number | null;
  /** botocore's credential method (`iam-role` for the metadata provider). */
  method?: string | null;
  accessKeyId: string | null;
  /** GetCallerIdentity with the credentials the client found. */
  arn: string | null;
  /** The roles whose credentials it asked for, i.e. what the role listing told it. */
  rolesRequested: string[];
  requests: MetadataRequest[];
  /** The client's output, for diagnostics. */
  output: string;
}

const CREDENTIALS_PATH = /^\/latest\/meta-data\/iam\/security-credentials\/([^/]+)$/;

function rolesRequested(requests: MetadataRequest[]): string[] {
  return requests.flatMap((r) => {
    const match = r.method === 'GET' ? CREDENTIALS_PATH.exec(r.path) : null;
    return match?.[1] === undefined ? [] : [match[1]];
  });
}

/** The client's JSON output: all of stdout, or else its last line. */
function parseJson(text: string): Record<string, unknown> | null {
  for (const candidate of [text, text.trim().split('\n').pop() ?? '']) {
    try {
      return JSON.parse(candidate) as Record<string, unknown>;
    } catch {
      // not this one
    }
  }
  return null;
}

/** A client script that prints one JSON object: its credentials, identity and metadata requests. */
async function runScript(pod: Pod, client: 'botocore' | 'smithy', command: string, script: string): Promise<ClientReport> {
  const result = await pod.run(command, [join(CLIENTS, script), POD_STS_ENDPOINT]);
  const out = parseJson(result.stdout);
  const requests = (out?.requests as MetadataRequest[] | undefined) ?? [];
  return {
    client,
    exit: result.code,
    ...(client === 'botocore' ? { method: (out?.method as string | null | undefined) ?? null } : {}),
    accessKeyId: (out?.accessKeyId as string | null | undefined) ?? null,
    arn: (out?.arn as string | null | undefined) ?? null,
    rolesRequested: rolesRequested(requests),
    requests,
    output: result.stdout + result.stderr,
  };
}

/** boto3's default credential chain, then STS GetCallerIdentity (clients/botocore_credentials.py). */
export function runBotocore(pod: Pod): Promise<ClientReport> {
  return runScript(pod, 'botocore', 'python3', 'botocore_credentials.py');
}

/** @smithy/credential-provider-imds fromInstanceMetadata(), then STS (clients/smithy-imds-credentials.mjs). */
export function runSmithy(pod: Pod): Promise<ClientReport> {
  return runScript(pod, 'smithy', process.execPath, 'smithy-imds-credentials.mjs');
}

/**
 * `aws sts get-caller-identity --output json`, with --debug: the metadata requests are
 * read from urllib3's log lines, the access key from the signed STS request's
 * Credential scope. The CLI (v1) takes its region from AWS_DEFAULT_REGION, not
 * AWS_REGION, so both are set.
 */
export async function runAwsCli(pod: Pod): Promise<ClientReport> {
  const result = await pod.run('aws', ['sts', 'get-caller-identity', '--output', 'json', '--debug'], {
    AWS_ENDPOINT_URL_STS: POD_STS_ENDPOINT,
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
  });
  const requests: MetadataRequest[] = [...result.stderr.matchAll(/http:\/\/169\.254\.169\.254:80 "([A-Z]+) (\S+) HTTP\/1\.1" (\d{3})/g)].map((m) => ({
    method: m[1] ?? '',
    path: m[2] ?? '',
    status: Number(m[3]),
  }));
  const identity = parseJson(result.stdout);
  const credential = /Credential=([A-Z0-9]+)\//.exec(result.stderr);
  return {
    client: 'aws-cli',
    exit: result.code,
    method: /Found credentials from IAM Role: /.test(result.stderr) ? 'iam-role' : null,
    accessKeyId: credential?.[1] ?? null,
    arn: result.code === 0 ? ((identity?.Arn as string | undefined) ?? null) : null,
    rolesRequested: rolesRequested(requests),
    requests,
    output: result.stdout + result.stderr.slice(-6000),
  };
}

export const CLIENT_RUNNERS = [runBotocore, runAwsCli, runSmithy] as const;
