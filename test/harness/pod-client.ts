// A pod asking the proxy: a GET from a pod's own loopback address (any of 127.0.0.0/8 is
// local), on a connection of its own, for tests and benchmarks.

import { request } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface Answer {
  /** 0 when no answer came (connection error or timeout). */
  status: number;
  body: string;
  ms: number;
  error?: string;
}

/**
 * One GET to the proxy from `from` (a pod's loopback address), on a connection of its
 * own, with extra headers if any; the whole answer within `timeoutMs`.
 */
export function get(port: number, from: string, path: string, timeoutMs = 5_000, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const settle = (status: number, body: string, error?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ status, body, ms: performance.now() - started, ...(error === undefined ? {} : { error }) });
    };
    const req = request({ host: '127.0.0.1', port, path, method, localAddress: from, agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => settle(res.statusCode ?? 0, body));
      res.on('error', (error) => settle(0, body, error.message));
    });
    let connected = false;
    req.on('socket', (socket) => socket.once('connect', () => (connected = true)));
    // Whether the connection was made tells a full accept queue from a stalled program.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms (${connected ? 'connected' : 'not connected'})`)), timeoutMs);
    req.on('error', (error) => settle(0, '', error.message));
    req.end();
  });
}

/** A raw TCP connection to the proxy from a pod's (or an attacker's) loopback address. */
export function connectFrom(port: number, from: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: from });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}
