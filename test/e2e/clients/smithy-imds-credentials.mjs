// @smithy/credential-provider-imds, the AWS SDK for JavaScript v3's instance-metadata
// provider, with its defaults: fromInstanceMetadata() reads its endpoint only from the
// environment, so with none set it calls http://169.254.169.254.
//
// Usage: node smithy-imds-credentials.mjs STS_ENDPOINT
//
// Prints one JSON object: the access key it found (or the error), the caller identity
// STS gives those credentials, and every request it sent to the metadata service
// (method, path, whether it carried a token, status), recorded from Node's
// diagnostics channels, which change nothing that is sent.

import { createSocket } from 'node:dgram';
import { subscribe } from 'node:diagnostics_channel';
import { fromInstanceMetadata } from '@smithy/credential-provider-imds';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';

const METADATA_HOST = '169.254.169.254';

// A UDP connect sends nothing; it only asks the kernel which source address a packet to
// the metadata address would get. In a test pod namespace that is the pod's IP.
const source = await new Promise((resolve) => {
  const probe = createSocket('udp4');
  probe.connect(80, METADATA_HOST, (error) => {
    resolve(error ? null : probe.address().address);
    probe.close();
  });
});
if (typeof source !== 'string' || !source.startsWith('10.200.0.')) {
  process.stderr.write(`refusing to run: not in a test pod namespace (source address ${source})\n`);
  process.exit(3);
}
const requests = [];
const entries = new WeakMap();

subscribe('http.client.request.start', ({ request }) => {
  if (request.host !== METADATA_HOST) return;
  const entry = {
    method: request.method,
    path: request.path,
    token: request.getHeader('x-aws-ec2-metadata-token') !== undefined,
    status: null,
  };
  entries.set(request, entry);
  requests.push(entry);
});
subscribe('http.client.response.finish', ({ request, response }) => {
  const entry = entries.get(request);
  if (entry !== undefined) entry.status = response.statusCode;
});

const out = { accessKeyId: null, arn: null, error: null, requests };
try {
  const credentials = await fromInstanceMetadata()();
  out.accessKeyId = credentials.accessKeyId;
  const sts = new STSClient({ region: 'us-east-1', endpoint: process.argv[2], credentials, maxAttempts: 1 });
  out.arn = (await sts.send(new GetCallerIdentityCommand({}))).Arn ?? null;
  sts.destroy();
} catch (error) {
  out.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
process.stdout.write(`${JSON.stringify(out)}\n`);
