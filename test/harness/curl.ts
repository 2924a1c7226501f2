// HTTP with curl from inside a network namespace (a pod's, a node's), as a process there would ask.

import { execute as exec } from './processes.js';

export interface HttpAnswer {
  /** 0 when curl got no answer (see `curlExit`). */
  status: number;
  /** Header names in lower case; the last value wins. */
  headers: Record<string, string>;
  /** The body byte for byte (curl -i writes it unchanged). */
  body: string;
  curlExit: number | null;
  /** From the request's start to the answer's first byte, as curl measured it. */
  ttfbMs: number;
}

export interface CurlOptions {
  method?: string;
  headers?: Record<string, string>;
  timeoutS?: number;
}

/** One HTTP request with curl through a namespace prefix; the raw answer parsed. */
export async function curlIn(prefix: string[], url: string, options: CurlOptions = {}): Promise<HttpAnswer> {
  const args = ['-s', '-i', '-w', '%{stderr}%{time_starttransfer}', '--max-time', String(options.timeoutS ?? 5), '-X', options.method ?? 'GET'];
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`);
  args.push(url);
  const [command, ...rest] = [...prefix, 'curl', ...args] as [string, ...string[]];
  const result = await exec(command, rest);
  const ttfbMs = Math.round(Number(result.stderr.trim()) * 1000);
  const split = result.stdout.indexOf('\r\n\r\n');
  if (result.code !== 0 || split === -1) return { status: 0, headers: {}, body: '', curlExit: result.code, ttfbMs };
  const [statusLine = '', ...headerLines] = result.stdout.slice(0, split).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body: result.stdout.slice(split + 4), curlExit: 0, ttfbMs };
}
