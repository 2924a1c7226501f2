import t from 'tap';
import { credentialDocument, credentialResponse, metadataTime, roleListingResponse } from '../../lib/credentials/document.js';

const credentials = {
  accessKeyId: 'ASIAEXAMPLE',
  secretAccessKey: 'secret/with+chars',
  sessionToken: 'token"quoted',
  expiration: new Date('2026-11-27T12:30:00.987Z'),
};

t.test('the credential document is laid out as the metadata service writes it', async (t) => {
  const doc = credentialDocument(credentials, new Date('2026-11-27T12:00:00.123Z'));
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
  const bytes = credentialResponse(credentials, new Date()).bytes(0, false).toString();
  t.match(bytes, /^HTTP\/1\.1 200 OK\r\nContent-Type: text\/plain\r\nServer: EC2ws\r\nContent-Length: \d+\r\n\r\n\{/);
  const listing = roleListingResponse('team/app').bytes(0, false).toString();
  t.ok(listing.endsWith('\r\n\r\nteam/app'), 'one name, no trailing newline');
});
