// Where the test command put things, and the guard that keeps tests off real AWS.

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The cache that test/setup/install.sh filled (binaries built once per machine). */
export function testCache(): string {
  const dir = process.env.KUBE2IAM_TEST_CACHE ?? join(homedir(), '.cache', 'kube2iam-ts');
  if (!existsSync(join(dir, 'bin', 'kube-apiserver'))) {
    throw new Error(`kube-apiserver is not built in ${dir}: run the tests with \`npm test\`, which runs test/setup/install.sh first`);
  }
  return dir;
}

/** A prefix for names that must be unique across parallel test files (network namespaces). */
export function runPrefix(): string {
  return `${process.env.KUBE2IAM_TEST_RUN ?? 'k2i'}x${process.pid}`;
}

/** The repository: this file runs from test/harness under tap and from dist/test/harness when built. */
export const REPO = ((): string => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();
const PROGRAM = join(REPO, 'dist', 'bin', 'kube2iam.js');

/** The Node options the container image runs the program with (its `ENV NODE_OPTIONS`). */
export const IMAGE_NODE_OPTIONS: string[] = (/^ENV NODE_OPTIONS="([^"]*)"/m.exec(readFileSync(join(REPO, 'Dockerfile'), 'utf8'))?.[1] ?? '')
  .split(' ')
  .filter(Boolean);

/**
 * The built program as its image runs it: the image's Node options, and none of tap's
 * hooks (tap re-adds its NODE_OPTIONS to every child it spawns; `env -u` drops them, or
 * the program would load source maps for coverage and use three times the memory).
 */
export function shippedProgram(args: string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', process.execPath, ...IMAGE_NODE_OPTIONS, PROGRAM, ...args]];
}
