// Requests with the answer each must get; shared by the socket-level conformance test
// and the parser-level split test.

import type { Echo } from './wire.js';

export interface Case {
  name: string;
  raw: string;
  status: number;
  open: boolean;
  saw?: Partial<Echo>;
  headRequest?: boolean;
}

export const H = 'Host: 169.254.169.254\r\n';
const many = (n: number): string => Array.from({ length: n }, (_, i) => `X-H${i}: v\r\n`).join('');

export const cases: Case[] = [
  // Valid requests.
  { name: 'origin-form GET', raw: `GET /latest/meta-data/ HTTP/1.1\r\n${H}\r\n`, status: 200, open: true, saw: { method: 'GET', path: '/latest/meta-data/', query: '', authority: '', minor: 1 } },
  { name: 'query string kept apart from the path', raw: `GET /a/b?x=1&y=2 HTTP/1.1\r\n${H}\r\n`, status: 200, open: true, saw: { path: '/a/b', query: 'x=1&y=2' } },
  { name: 'absolute-form target (pod using the node as HTTP proxy)', raw: `GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n${H}\r\n`, status: 200, open: true, saw: { authority: '169.254.169.254', path: '/latest/meta-data/' } },
  { name: 'absolute-form without a path', raw: `GET http://169.254.169.254 HTTP/1.1\r\n${H}\r\n`, status: 200, open: true, saw: { authority: '169.254.169.254', path: '/' } },
  { name: 'absolute-form with port, query and an upper-case scheme', raw: `GET HTTP://169.254.169.254:80/a?b=1 HTTP/1.1\r\n${H}\r\n`, status: 200, open: true, saw: { authority: '169.254.169.254:80', path: '/a', query: 'b=1' } },
  { name: 'absolute-form with a query and no path', raw: `GET http://h?x=1 HTTP/1.1\r\n${H}\r\n`, status: 200, open: true, saw: { authority: 'h', path: '/', query: 'x=1' } },
  { name: 'HTTP/1.0 closes by default', raw: 'GET / HTTP/1.0\r\n\r\n', status: 200, open: false, saw: { minor: 0, keepAlive: false } },
  { name: 'HTTP/1.0 with Connection: keep-alive stays open', raw: 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', status: 200, open: true, saw: { keepAlive: true } },
  { name: 'HTTP/1.1 with Connection: close', raw: `GET / HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, status: 200, open: false, saw: { keepAlive: false } },
  { name: 'close inside a Connection list, any case', raw: `GET / HTTP/1.1\r\n${H}Connection: Keep-Alive, CLOSE\r\n\r\n`, status: 200, open: false },
  { name: 'close in a second Connection header', raw: `GET / HTTP/1.1\r\n${H}Connection: keep-alive\r\nConnection: close\r\n\r\n`, status: 200, open: false },
  { name: 'HEAD gets headers only', raw: `HEAD /x HTTP/1.1\r\n${H}\r\n`, status: 200, open: true, headRequest: true },
  { name: 'PUT with a Content-Length body', raw: `PUT /latest/api/token HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, status: 200, open: true, saw: { method: 'PUT', body: 'hello' } },
  { name: 'POST with a chunked body', raw: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n`, status: 200, open: true, saw: { body: 'abc0123456789' } },
  { name: 'chunk extensions and trailers are accepted and dropped', raw: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n2;name=value\r\nhi\r\n0\r\nX-Trailer: t\r\n\r\n`, status: 200, open: true, saw: { body: 'hi' } },
  { name: 'repeated headers are all kept, in order', raw: `GET / HTTP/1.1\r\n${H}X-A: 1\r\nX-A: 2\r\n\r\n`, status: 200, open: true, saw: { headers: ['host', '169.254.169.254', 'x-a', '1', 'x-a', '2'] } },
  { name: 'header names are case-insensitive (lower-cased)', raw: `GET / HTTP/1.1\r\nHOST: h\r\nX-Aws-Ec2-Metadata-Token: tok\r\n\r\n`, status: 200, open: true, saw: { headers: ['host', 'h', 'x-aws-ec2-metadata-token', 'tok'] } },
  { name: 'optional whitespace around a value is trimmed', raw: `GET / HTTP/1.1\r\nHost:\t h \t\r\nX-B:  a b  \r\n\r\n`, status: 200, open: true, saw: { headers: ['host', 'h', 'x-b', 'a b'] } },
  { name: 'empty header value', raw: `GET / HTTP/1.1\r\n${H}X-Empty:\r\n\r\n`, status: 200, open: true, saw: { headers: ['host', '169.254.169.254', 'x-empty', ''] } },
  { name: 'empty lines before the request line are ignored', raw: `\r\n\r\nGET / HTTP/1.1\r\n${H}\r\n`, status: 200, open: true },
  { name: 'identical repeated Content-Length', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`, status: 200, open: true, saw: { body: 'abc' } },
  { name: 'Content-Length list of identical values', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: 3, 3\r\n\r\nabc`, status: 200, open: true, saw: { body: 'abc' } },
  { name: 'Content-Length with leading zeros', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: 003\r\n\r\nabc`, status: 200, open: true, saw: { body: 'abc' } },
  { name: 'Content-Length: 0', raw: `POST / HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`, status: 200, open: true, saw: { body: '' } },
  { name: 'obs-text in a header value', raw: `GET / HTTP/1.1\r\n${H}X-T: caf\xe9\r\n\r\n`, status: 200, open: true, saw: { headers: ['host', '169.254.169.254', 'x-t', 'caf\xe9'] } },
  { name: 'OPTIONS with asterisk-form', raw: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, status: 200, open: true, saw: { method: 'OPTIONS', path: '*' } },
  { name: 'extension method token', raw: `PURGE /x HTTP/1.1\r\n${H}\r\n`, status: 200, open: true, saw: { method: 'PURGE' } },
  { name: 'HTTP/1.0 without Host', raw: 'GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', status: 200, open: true },
  { name: 'exactly the header count limit', raw: `GET / HTTP/1.1\r\n${H}${many(99)}\r\n`, status: 200, open: true },
  { name: 'a request line of 8000 bytes (under the limit)', raw: `GET /${'a'.repeat(7950)} HTTP/1.1\r\n${H}\r\n`, status: 200, open: true },

  // Refused requests: answered with an error and closed.
  { name: 'Transfer-Encoding with Content-Length (smuggling)', raw: `POST / HTTP/1.1\r\n${H}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, open: false },
  { name: 'differing Content-Length values', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, status: 400, open: false },
  { name: 'differing values in one Content-Length list', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: 3, 4\r\n\r\nabcd`, status: 400, open: false },
  { name: 'negative Content-Length', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, status: 400, open: false },
  { name: 'signed Content-Length', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\nabc`, status: 400, open: false },
  { name: 'non-numeric Content-Length', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: abc\r\n\r\n`, status: 400, open: false },
  { name: 'Content-Length with inner space', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: 1 2\r\n\r\n`, status: 400, open: false },
  { name: 'hex Content-Length', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: 0x3\r\n\r\nabc`, status: 400, open: false },
  { name: 'obs-fold (continuation line)', raw: `GET / HTTP/1.1\r\n${H}X-A: 1\r\n 2\r\n\r\n`, status: 400, open: false },
  { name: 'bare LF line end in a header', raw: `GET / HTTP/1.1\r\n${H}X-A: 1\n\r\n`, status: 400, open: false },
  { name: 'bare LF line end on the request line', raw: `GET / HTTP/1.1\n${H}\r\n`, status: 400, open: false },
  { name: 'bare LF before the request line', raw: `\nGET / HTTP/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'bare CR inside a header value', raw: `GET / HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`, status: 400, open: false },
  { name: 'NUL in a header value', raw: `GET / HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`, status: 400, open: false },
  { name: 'control character in a header value', raw: `GET / HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n`, status: 400, open: false },
  { name: 'DEL in a header value', raw: `GET / HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, status: 400, open: false },
  { name: 'whitespace between header name and colon', raw: `GET / HTTP/1.1\r\n${H}Content-Length : 0\r\n\r\n`, status: 400, open: false },
  { name: 'whitespace before the first header', raw: `GET / HTTP/1.1\r\n ${H}\r\n`, status: 400, open: false },
  { name: 'invalid character in a header name', raw: `GET / HTTP/1.1\r\n${H}X(A): 1\r\n\r\n`, status: 400, open: false },
  { name: 'empty header name', raw: `GET / HTTP/1.1\r\n${H}: 1\r\n\r\n`, status: 400, open: false },
  { name: 'invalid character in the method', raw: `G@T / HTTP/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'two spaces after the method', raw: `GET  / HTTP/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'control character in the target', raw: `GET /a\x7fb HTTP/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'non-ASCII byte in the target', raw: `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'fragment in the target', raw: `GET /a#b HTTP/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'target that is none of the four forms', raw: `GET a/b HTTP/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'asterisk-form with a method other than OPTIONS', raw: `GET * HTTP/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'absolute-form with userinfo', raw: `GET http://user@169.254.169.254/ HTTP/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'CONNECT is not implemented', raw: `CONNECT 169.254.169.254:443 HTTP/1.1\r\n${H}\r\n`, status: 501, open: false },
  { name: 'malformed version name', raw: `GET / HTTX/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'version with two minor digits', raw: `GET / HTTP/1.10\r\n${H}\r\n`, status: 400, open: false },
  { name: 'lower-case version name', raw: `GET / http/1.1\r\n${H}\r\n`, status: 400, open: false },
  { name: 'HTTP/0.9 request line without a version', raw: 'GET /\r\n\r\n', status: 400, open: false },
  { name: 'HTTP/2.0 is not supported', raw: `GET / HTTP/2.0\r\n${H}\r\n`, status: 505, open: false },
  { name: 'HTTP/1.2 is not supported', raw: `GET / HTTP/1.2\r\n${H}\r\n`, status: 505, open: false },
  { name: 'missing Host in HTTP/1.1', raw: 'GET / HTTP/1.1\r\n\r\n', status: 400, open: false },
  { name: 'two Host headers', raw: `GET / HTTP/1.1\r\n${H}${H}\r\n`, status: 400, open: false },
  { name: 'header section over 8 KiB', raw: `GET / HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(8300)}\r\n\r\n`, status: 431, open: false },
  { name: 'more than 100 headers', raw: `GET / HTTP/1.1\r\n${H}${many(100)}\r\n`, status: 431, open: false },
  { name: 'request target over 8 KiB', raw: `GET /${'a'.repeat(8300)} HTTP/1.1\r\n${H}\r\n`, status: 414, open: false },
  { name: 'Content-Length over the body limit', raw: `PUT / HTTP/1.1\r\n${H}Content-Length: 65537\r\n\r\n`, status: 413, open: false },
  { name: 'chunked body over the body limit', raw: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n10001\r\n${'x'.repeat(100)}`, status: 413, open: false },
  { name: 'unsupported transfer coding', raw: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, status: 501, open: false },
  { name: 'chunked not last (gzip, chunked)', raw: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, status: 501, open: false },
  { name: 'Transfer-Encoding in HTTP/1.0', raw: 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', status: 400, open: false },
  { name: 'invalid chunk size', raw: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\n`, status: 400, open: false },
  { name: 'chunk data not followed by CRLF', raw: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n`, status: 400, open: false },
  { name: 'an expectation other than 100-continue', raw: `PUT / HTTP/1.1\r\n${H}Expect: magic\r\nContent-Length: 1\r\n\r\nx`, status: 417, open: false },
];
