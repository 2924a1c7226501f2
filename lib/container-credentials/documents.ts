// The answers of the container-credentials endpoint, in the layout the SDKs' HTTP
// credential providers read (the EKS Pod Identity Agent's): a JSON document per issuance,
// and errors as JSON with Code and Message, which the JavaScript SDK reports and Go's
// case-insensitive decoding reads as its own code and message.

import type { IssuedCredentials } from '../credentials/store.js';
import { PreparedResponse, type HeaderList } from '../http/index.js';
import { metadataTime } from '../imds/documents.js';

const JSON_HEADERS: HeaderList = [['Content-Type', 'application/json']];

/** The account a role ARN belongs to (arn:aws:iam::<account>:role/...); '' when it names none. */
export function accountOf(roleArn: string): string {
  return roleArn.split(':')[4] ?? '';
}

export function containerCredentialDocument(credentials: IssuedCredentials, accountId: string): string {
  return JSON.stringify({
    AccessKeyId: credentials.accessKeyId,
    SecretAccessKey: credentials.secretAccessKey,
    Token: credentials.sessionToken,
    AccountId: accountId,
    Expiration: metadataTime(credentials.expiration),
  });
}

export function containerError(status: number, code: string, message: string, headers: HeaderList = []): PreparedResponse {
  return new PreparedResponse(status, [...JSON_HEADERS, ...headers], JSON.stringify({ Code: code, Message: message }));
}

/** A document rendered once per issuance, held as long as the credentials are. */
export class PreparedDocuments {
  private readonly documents = new WeakMap<IssuedCredentials, PreparedResponse>();

  credentials(credentials: IssuedCredentials, roleArn: string): PreparedResponse {
    let answer = this.documents.get(credentials);
    if (answer === undefined) {
      answer = new PreparedResponse(200, JSON_HEADERS, containerCredentialDocument(credentials, accountOf(roleArn)));
      this.documents.set(credentials, answer);
    }
    return answer;
  }
}
