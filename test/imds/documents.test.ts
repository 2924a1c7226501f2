import t from 'tap';
import { credentialDocument, credentialResponse, metadataTime, PreparedAnswers, roleListingResponse } from '../../lib/imds/documents.js';

const credentials = {
  accessKeyId: 'ASIAEXAMPLE',
  secretAccessKey: 'secret/with+chars',
  sessionToken: 'token"quoted',
  expiration: new Date('2026-11-27T12:30:00.987Z'),
  issuedAt: new Date('2026-11-27T12:00:00.123Z'),
};

t.test('the credential document is laid out as the metadata service writes it', async (t) => {
  const doc = credentialDocument(credentials);
  t.equal(
    doc,
    [
      '{',
      '  "Code" : "Success",',
      '  "LastUpdated" : "2026-11-27T12:00:00Z",',
      '  "Type" : "AWS-HMAC",',
      '  "AccessKeyId" : "ASIAEXAMPLE",',
      '  "SecretAccessKey" : "secret/with+chars",',
      '  "Token" : "token\\"quoted",',
      '  "Expiration" : "2026-11-27T12:30:00Z"',
      '}',
    ].join('\n'),
  );
  const parsed = JSON.parse(doc) as Record<string, string>;
  t.same(Object.keys(parsed), ['Code', 'LastUpdated', 'Type', 'AccessKeyId', 'SecretAccessKey', 'Token', 'Expiration']);
  t.equal(parsed.Token, 'token"quoted');
});

t.test('times are UTC with seconds and a literal Z', async (t) => {
  t.equal(metadataTime(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 999))), '2026-01-02T03:04:05Z');
});

t.test('answers are prepared once: status, headers and body in one buffer', async (t) => {
  const bytes = credentialResponse(credentials).bytes(0, false).toString();
  t.match(bytes, /^HTTP\/1\.1 200 OK\r\nContent-Type: text\/plain\r\nServer: EC2ws\r\nContent-Length: \d+\r\n\r\n\{/);
  const listing = roleListingResponse('team/app').bytes(0, false).toString();
  t.ok(listing.endsWith('\r\n\r\nteam/app'), 'one name, no trailing newline');
});

t.test('each answer is rendered once for the same data, and the texts kept are bounded', async (t) => {
  const answers = new PreparedAnswers();
  t.equal(answers.credentials(credentials), answers.credentials(credentials), 'one document per issuance');
  t.not(answers.credentials({ ...credentials }), answers.credentials(credentials), 'a renewal renders anew');
  t.equal(answers.listing('team/app'), answers.listing('team/app'), 'pods of one role share its listing');
  t.equal(answers.refusal('no role annotation and no default role'), answers.refusal('no role annotation and no default role'));
  const refusal = answers.refusal('role x is not allowed in namespace y').bytes(0, false).toString();
  t.match(refusal, /^HTTP\/1\.1 404 Not Found\r\n/);
  t.ok(refusal.endsWith('\r\n\r\nrole x is not allowed in namespace y\n'), 'the reason, as kube2iam');
  const error = answers.stsError('AccessDenied').bytes(0, false).toString();
  t.match(error, /^HTTP\/1\.1 500 Internal Server Error\r\n/);
  t.ok(error.endsWith('\r\n\r\ncredentials unavailable: STS answered AccessDenied\n'), 'the pod is told the code only');
  const first = answers.listing('role-0');
  for (let n = 1; n <= 10_000; n++) answers.listing(`role-${n}`);
  t.not(answers.listing('role-0'), first, 'past 10,000 names the oldest is rendered again, not kept forever');
});
