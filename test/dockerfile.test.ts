// The container image, checked without a Docker engine (none runs on these machines):
// each stage is replayed in a temporary directory from the Dockerfile's own lines. The
// build stage gets exactly the files it copies and compiles; the runtime stage installs
// with its own `npm ci` command (offline, from the npm cache the test run's install
// filled), gets the compiled files, and its entry point must run with the image's
// environment and no development dependency.

import t from 'tap';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execute } from './harness/processes.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
const ignored = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));

interface Stage {
  name: string;
  lines: string[];
}

/** The Dockerfile's stages, with continuation lines joined. */
const stages: Stage[] = [];
for (const line of dockerfile.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))) {
  const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
  if (from !== null) stages.push({ name: from[1] ?? `stage${stages.length}`, lines: [] });
  else stages.at(-1)?.lines.push(line);
}
const [build, runtime] = stages as [Stage, Stage];
const copies = (stage: Stage): Array<{ from: string | null; sources: string[]; dest: string }> =>
  stage.lines
    .filter((line) => line.startsWith('COPY '))
    .map((line) => {
      const words = line.split(/\s+/).slice(1);
      const from = words[0]?.startsWith('--from=') === true ? (words.shift() as string).slice('--from='.length) : null;
      const dest = words.pop() as string;
      return { from, sources: words, dest };
    });

t.test('two stages: build, then a runtime that runs the built program as a non-root user', async (t) => {
  t.equal(stages.length, 2);
  t.equal(build.name, 'build');
  t.match(dockerfile, /^FROM node:20-\S+ AS build$/m, 'Node 20, as the project');
  t.ok(runtime.lines.includes('ENTRYPOINT ["node", "/app/dist/bin/kube2iam.js"]'), 'the entry point is the built program');
  t.ok(runtime.lines.includes('USER node'), 'non-root unless the DaemonSet asks for root (--iptables)');
  t.ok(runtime.lines.some((line) => /apt-get install .*\biptables\b/.test(line)), 'the iptables tools --iptables runs');
});

t.test('every file the build copies exists and is not excluded by .dockerignore', async (t) => {
  for (const copy of copies(build).concat(copies(runtime)).filter((c) => c.from === null)) {
    for (const source of copy.sources) {
      t.ok(existsSync(join(REPO, source)), `${source} exists`);
      t.notOk(ignored.includes(source.replace(/\/$/, '')), `${source} is sent to the build`);
    }
  }
});

t.test('replayed, the stages build a runtime that starts with production dependencies only', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'k2i-image-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const buildDir = join(work, 'build');
  const appDir = join(work, 'app');
  for (const copy of copies(build)) {
    for (const source of copy.sources) cpSync(join(REPO, source), join(buildDir, copy.dest === './' ? source : copy.dest), { recursive: true });
  }
  // The build stage's `npm ci` installs what the repository's own install has.
  t.ok(build.lines.includes('RUN npm ci --no-audit --no-fund'));
  symlinkSync(join(REPO, 'node_modules'), join(buildDir, 'node_modules'));
  t.ok(build.lines.includes('RUN npx tsc -p .'));
  const tsc = await execute(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], { timeoutMs: 120_000, cwd: buildDir });
  t.equal(tsc.code, 0, `tsc in the build stage: ${tsc.stdout}${tsc.stderr}`);

  for (const copy of copies(runtime).filter((c) => c.from === null)) {
    for (const source of copy.sources) cpSync(join(REPO, source), join(appDir, source));
  }
  const install = runtime.lines.find((line) => line.startsWith('RUN npm ci'))?.slice('RUN '.length).split('&&')[0]?.trim().split(/\s+/) ?? [];
  t.same(install.slice(0, 3), ['npm', 'ci', '--omit=dev'], 'the runtime installs production dependencies only');
  const npm = await execute(install[0] as string, [...install.slice(1), '--offline'], { timeoutMs: 120_000, cwd: appDir });
  t.equal(npm.code, 0, `npm ci in the runtime stage: ${npm.stderr.slice(-2000)}`);
  for (const dev of ['typescript', 'tap']) t.notOk(existsSync(join(appDir, 'node_modules', dev)), `${dev} is not in the image`);
  for (const copy of copies(runtime).filter((c) => c.from === 'build')) {
    for (const source of copy.sources) cpSync(join(buildDir, source.replace(/^\/app\//, '')), join(appDir, copy.dest), { recursive: true });
  }

  const nodeOptions = /^ENV NODE_OPTIONS="([^"]*)"/m.exec(dockerfile)?.[1] ?? '';
  // `env -i`: only the image's environment (tap adds its loaders to NODE_OPTIONS of children).
  const started = await execute('env', ['-i', `PATH=${process.env.PATH ?? ''}`, `NODE_OPTIONS=${nodeOptions}`, 'NODE_ENV=production', process.execPath, join(appDir, 'dist', 'bin', 'kube2iam.js'), '--version'], { cwd: appDir });
  t.equal(started.code, 0, started.stderr);
  t.match(started.stdout, /^Version: \d+\.\d+\.\d+/);
  const help = await execute('env', ['-i', `PATH=${process.env.PATH ?? ''}`, process.execPath, join(appDir, 'dist', 'bin', 'kube2iam.js'), '--pods-file', join(REPO, 'manifests', 'examples', 'pods.yaml'), '--metadata-addr', '127.0.0.1:9', '--app-port', '70000'], { cwd: appDir });
  t.equal(help.code, 2, 'flags are parsed by the image’s program (a bad port is refused)');
});
