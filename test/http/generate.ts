// Inputs for fuzzing the HTTP engine: requests built from the grammar, mutations of
// them, smuggling-shaped variants and plain noise, from a seeded generator so that a
// failure can be replayed.

import type { Random } from '../harness/random.js';

const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'OPTIONS', 'DELETE', 'PURGE', 'get', 'G3T'];
const TARGETS = [
  '/latest/meta-data/iam/security-credentials/',
  '/latest/meta-data/iam/security-credentials/role',
  '/latest/api/token',
  '/healthz',
  '/?a=b&c',
  'http://169.254.169.254/latest/meta-data/',
  'http://169.254.169.254',
  '*',
  '//x/./y/%2F',
];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.x'];
const HEADERS = [
  'Host: 169.254.169.254',
  'User-Agent: aws-sdk-go-v2/1.0',
  'Accept: */*',
  'X-aws-ec2-metadata-token: AQAEA-token',
  'X-aws-ec2-metadata-token-ttl-seconds: 21600',
  'Connection: keep-alive',
  'Connection: close',
  'X-Forwarded-For: 10.0.0.1',
  'Accept-Encoding: identity',
  'X-Empty:',
];
const SMUGGLING = [
  'Transfer-Encoding: chunked\r\nContent-Length: 4',
  'Content-Length: 4\r\nContent-Length: 5',
  'Transfer-Encoding: xchunked',
  'Transfer-Encoding : chunked',
  'Transfer-Encoding:\tchunked',
  'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked',
  'Content-Length: +4',
  'Content-Length: 4 4',
  ' Transfer-Encoding: chunked',
  'X: y\r\n Transfer-Encoding: chunked',
];
const NASTY = [0x00, 0x0a, 0x0d, 0x20, 0x09, 0x3a, 0x7f, 0x80, 0xff, 0x2c, 0x3b, 0x30];

function body(random: Random): string {
  const text = 'x'.repeat(random.int(40));
  if (random.int(2) === 0) return `Content-Length: ${text.length}\r\n\r\n${text}`;
  const chunks = text.length === 0 ? '' : `${text.length.toString(16)}\r\n${text}\r\n`;
  return `Transfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`;
}

/** A request from the grammar; mostly valid, sometimes with a wrong version or method. */
export function grammarRequest(random: Random): string {
  let head = `${random.pick(METHODS)} ${random.pick(TARGETS)} ${random.pick(VERSIONS)}\r\n`;
  if (random.int(10) !== 0) head += 'Host: 169.254.169.254\r\n';
  const count = random.int(6);
  for (let n = 0; n < count; n++) head += `${random.pick(HEADERS)}\r\n`;
  if (random.int(6) === 0) head += `${random.pick(SMUGGLING)}\r\n`;
  return random.int(3) === 0 ? head + body(random) : `${head}\r\n`;
}

function mutate(random: Random, bytes: Buffer): Buffer {
  const out = Array.from(bytes);
  const edits = 1 + random.int(4);
  for (let n = 0; n < edits && out.length > 0; n++) {
    const at = random.int(out.length);
    switch (random.int(5)) {
      case 0:
        out[at] = random.pick(NASTY);
        break;
      case 1:
        out.splice(at, 0, random.pick(NASTY));
        break;
      case 2:
        out.splice(at, 1 + random.int(4));
        break;
      case 3:
        out.splice(at, 0, ...out.slice(at, at + random.int(20)));
        break;
      default:
        out.length = at;
    }
  }
  return Buffer.from(out);
}

export function generateInput(random: Random): Buffer {
  switch (random.int(5)) {
    case 0:
    case 1: {
      let raw = grammarRequest(random);
      while (random.int(3) === 0) raw += grammarRequest(random); // pipelined
      return Buffer.from(raw, 'latin1');
    }
    case 2:
    case 3:
      return mutate(random, Buffer.from(grammarRequest(random), 'latin1'));
    default: {
      const noise = Buffer.alloc(random.int(200));
      for (let i = 0; i < noise.length; i++) noise[i] = random.int(256);
      return noise;
    }
  }
}
