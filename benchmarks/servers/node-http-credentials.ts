// The credential hot path on node:http, for the benchmark's comparison: the same logic as
// the proxy (caller by source IP, role name checked, a prepared document), on Node's own
// HTTP server instead of this project's engine.
//   node node-http-credentials.js CALLER_IP ROLE_NAME TOKEN_LENGTH PORT

import { createServer } from 'node:http';

const [callerIp, roleName, tokenLength, port] = process.argv.slice(2) as [string, string, string, string];
const now = new Date();
const stamp = (date: Date): string => `${date.toISOString().slice(0, 19)}Z`;
const document = Buffer.from(
  `{\n  "Code" : "Success",\n  "LastUpdated" : "${stamp(now)}",\n  "Type" : "AWS-HMAC",\n  "AccessKeyId" : "ASIABENCHBENCHBENCH1",\n  "SecretAccessKey" : "${'s'.repeat(40)}",\n  "Token" : "${'t'.repeat(Number(tokenLength))}",\n  "Expiration" : "${stamp(new Date(now.getTime() + 1_800_000))}"\n}`,
);
const pods = new Map([[callerIp, { name: roleName, document }]]);
const prefix = '/meta-data/iam/security-credentials/';

const server = createServer((req, res) => {
  const pod = pods.get(req.socket.remoteAddress ?? '');
  const path = req.url ?? '/';
  const at = path.indexOf(prefix);
  if (pod === undefined || at === -1) {
    res.writeHead(404).end();
    return;
  }
  if (path.slice(at + prefix.length) !== pod.name) {
    res.writeHead(403, { 'Content-Type': 'text/plain' }).end(`Invalid role ${path.slice(at + prefix.length)}\n`);
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': pod.document.length, Server: 'EC2ws' });
  res.end(pod.document);
});
server.keepAliveTimeout = 5000;
server.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready\n'));
