// Builds the kube2iam-equivalent Go peer (benchmarks/peers/kube2iam-go) on demand, with
// Debian's Go and the Debian packages of kube2iam's libraries (GOPATH mode: no module
// downloads). Cached next to the test components; rebuilt when its source changes.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('../../benchmarks/peers/kube2iam-go/', import.meta.url));
const GOPATH = '/usr/share/gocode';
const LIBRARIES = ['github.com/gorilla/mux', 'github.com/sirupsen/logrus', 'github.com/prometheus/client_golang/prometheus'];

/** The peer's binary, or why there is none (its rows are then skipped). */
export function goPeer(): { binary: string } | { skipped: string } {
  if (spawnSync('go', ['version']).status !== 0) return { skipped: 'Go is not installed (Debian golang-go)' };
  const missing = LIBRARIES.filter((lib) => !existsSync(join(GOPATH, 'src', lib)));
  if (missing.length > 0) return { skipped: `Debian's Go packages of ${missing.join(', ')} are not installed` };
  const cache = join(process.env.KUBE2IAM_TEST_CACHE ?? join(homedir(), '.cache', 'kube2iam-ts'), 'bench');
  mkdirSync(cache, { recursive: true });
  const binary = join(cache, 'kube2iam-go-peer');
  const source = join(SOURCE, 'main.go');
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return { binary };
  const build = spawnSync('go', ['build', '-o', binary, '.'], {
    cwd: SOURCE,
    env: { ...process.env, GO111MODULE: 'off', GOPATH, GOFLAGS: '', GOCACHE: join(cache, 'go-build'), GOPROXY: 'off' },
    encoding: 'utf8',
    timeout: 300_000,
  });
  if (build.status !== 0) return { skipped: `the Go peer did not build: ${(build.stderr || String(build.error)).trim().split('\n').slice(-3).join(' ')}` };
  return { binary };
}
