// Where the test command put things, and the guard that keeps tests off real AWS.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

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
