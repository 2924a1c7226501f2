// Byte classes from RFC 9110 / 9112, as lookup tables so the parser's inner loops
// do one indexed load per byte instead of a chain of comparisons.

function table(accept: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = accept(c) ? 1 : 0;
  return t;
}

const isAlnum = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);

/** tchar: the characters of a method or a header name. */
export const TOKEN = table((c) => isAlnum(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)));

/**
 * A request-target byte: visible US-ASCII (no space, control or obs-text), and no `#`:
 * a fragment is never part of a request-target (RFC 9112 3.2).
 */
export const TARGET = table((c) => c > 0x20 && c < 0x7f && c !== 0x23);

/** field-vchar, SP and HTAB: what a header value may hold (obs-text included, controls and DEL not). */
export const FIELD_VALUE = table((c) => c === 0x09 || (c >= 0x20 && c !== 0x7f));

/** Hex digit to value, 255 for anything else. */
export const HEX = new Uint8Array(256).fill(255);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[0x41 + c] = 10 + c;
  HEX[0x61 + c] = 10 + c;
}

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;
export const SEMICOLON = 0x3b;
