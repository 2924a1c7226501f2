// @aws-sdk/credential-provider-http, the AWS SDK for JavaScript v3's container provider,
// with its defaults: fromHttp() reads AWS_CONTAINER_CREDENTIALS_FULL_URI and
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE from the environment (the token file re-read on
// every call), as in a pod opted in to the token contract.
//
// Usage: node http-credentials.mjs STS_ENDPOINT
//
// Prints one JSON object: the access key it found (or the error), and the caller
// identity STS gives those credentials.

import { fromHttp } from '@aws-sdk/credential-provider-http';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';

if (!process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI) {
  process.stderr.write('refusing to run: AWS_CONTAINER_CREDENTIALS_FULL_URI is not set\n');
  process.exit(3);
}
const out = { accessKeyId: null, accountId: null, arn: null, error: null };
try {
  const credentials = await fromHttp({ maxRetries: 1 })();
  out.accessKeyId = credentials.accessKeyId;
  out.accountId = credentials.accountId ?? null;
  const sts = new STSClient({ region: 'us-east-1', endpoint: process.argv[2], credentials, maxAttempts: 1 });
  out.arn = (await sts.send(new GetCallerIdentityCommand({}))).Arn ?? null;
  sts.destroy();
} catch (error) {
  out.error = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
process.stdout.write(`${JSON.stringify(out)}\n`);
