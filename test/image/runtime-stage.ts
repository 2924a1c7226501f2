// The container image, replayed without a Docker engine (none runs on these machines),
// from the Dockerfile's own lines: its stages, the build stage's compile, the runtime
// stage's `npm ci` and copies, its ENV, USER and ENTRYPOINT, and the root filesystem of
// its base with the packages it installs (test/setup/image-rootfs.sh, cached).

import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, testCache } from '../harness/environment.js';
import { execute, run } from '../harness/processes.js';

export const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
export const dockerignore = readFileSync(join(REPO, '.dockerignore'), 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));

export interface Stage {
  name: string;
  from: string;
  lines: string[];
}

/** The Dockerfile's stages, with continuation lines joined and comments dropped. */
export const stages: Stage[] = [];
for (const line of dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'))) {
  const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
  if (from !== null) stages.push({ name: from[2] ?? `stage${stages.length}`, from: from[1] as string, lines: [] });
  else stages.at(-1)?.lines.push(line);
}
export const [buildStage, runtimeStage] = stages as [Stage, Stage];

export interface Copy {
  from: string | null;
  sources: string[];
  dest: string;
}

export function copies(stage: Stage): Copy[] {
  return stage.lines
    .filter((line) => line.startsWith('COPY '))
    .map((line) => {
      const words = line.split(/\s+/).slice(1);
      const from = words[0]?.startsWith('--from=') === true ? (words.shift() as string).slice('--from='.length) : null;
      const dest = words.pop() as string;
      return { from, sources: words, dest };
    });
}

/** The build stage's ARGs with their defaults (no --build-arg given). */
export function buildArgs(): Record<string, string> {
  const args: Record<string, string> = {};
  for (const line of buildStage.lines.filter((l) => l.startsWith('ARG '))) {
    const m = /^ARG\s+(\w+)(?:=(\S*))?/.exec(line);
    if (m !== null) args[m[1] as string] = m[2] ?? '';
  }
  return args;
}

/** The runtime stage's ENV, as the container starts with it. */
export function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of runtimeStage.lines.filter((l) => l.startsWith('ENV '))) {
    for (const m of line.slice(4).matchAll(/(\w+)=("([^"]*)"|\S+)/g)) env[m[1] as string] = m[3] ?? (m[2] as string);
  }
  return env;
}

/** The user the image runs as when the pod sets no runAsUser: the runtime stage's last USER, else root. */
export function imageUser(): string {
  return (
    runtimeStage.lines
      .filter((l) => l.startsWith('USER '))
      .at(-1)
      ?.slice(5)
      .trim() ?? 'root'
  );
}

/** The entry point's argv (exec form). */
export function entrypoint(): string[] {
  const line = runtimeStage.lines.find((l) => l.startsWith('ENTRYPOINT '));
  return line === undefined ? [] : (JSON.parse(line.slice('ENTRYPOINT '.length)) as string[]);
}

/** Docker's default PATH, which the node images keep. */
export const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Replays both stages into `work`: the build stage gets exactly the files it copies and
 * compiles them (against the repository's own install, which is what its `npm ci`
 * installs); the runtime stage's directory gets its own copies and runs its own `npm ci`
 * (offline, from the npm cache the test run's install filled). Returns the runtime
 * stage's WORKDIR contents (what the image holds at /app).
 */
export async function replayStages(work: string): Promise<{ buildDir: string; appDir: string }> {
  const buildDir = join(work, 'build');
  const appDir = join(work, 'app');
  for (const copy of copies(buildStage)) {
    for (const source of copy.sources) cpSync(join(REPO, source), join(buildDir, copy.dest === './' ? source : copy.dest), { recursive: true });
  }
  symlinkSync(join(REPO, 'node_modules'), join(buildDir, 'node_modules'));
  const tsc = await execute(process.execPath, [join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], { timeoutMs: 120_000, cwd: buildDir });
  if (tsc.code !== 0) throw new Error(`tsc in the build stage failed: ${tsc.stdout}${tsc.stderr}`);
  // The build record: the stage's own `node -e` line, with its ARGs' defaults, as `docker build` runs it.
  for (const line of buildStage.lines.filter((l) => l.startsWith('RUN node '))) {
    const record = await execute('bash', ['-c', line.slice('RUN '.length)], { timeoutMs: 30_000, cwd: buildDir, env: { ...process.env, ...buildArgs() } });
    if (record.code !== 0) throw new Error(`${line} failed: ${record.stderr}`);
  }

  mkdirSync(appDir, { recursive: true });
  for (const copy of copies(runtimeStage).filter((c) => c.from === null)) {
    for (const source of copy.sources) cpSync(join(REPO, source), join(appDir, source));
  }
  const install = runtimeInstall();
  const npm = await execute(install[0] as string, [...install.slice(1), '--offline'], { timeoutMs: 120_000, cwd: appDir });
  if (npm.code !== 0) throw new Error(`npm ci in the runtime stage failed: ${npm.stderr.slice(-2000)}`);
  for (const copy of copies(runtimeStage).filter((c) => c.from === buildStage.name)) {
    for (const source of copy.sources) cpSync(join(buildDir, source.replace(/^\/app\//, '')), join(appDir, copy.dest), { recursive: true });
  }
  return { buildDir, appDir };
}

/** The runtime stage's `npm ci ...` command, up to its first `&&`. */
export function runtimeInstall(): string[] {
  return (
    runtimeStage.lines
      .find((line) => line.startsWith('RUN npm ci'))
      ?.slice('RUN '.length)
      .split('&&')[0]
      ?.trim()
      .split(/\s+/) ?? []
  );
}

/**
 * The root filesystem of the runtime stage's base with the packages it installs, built
 * by test/setup/image-rootfs.sh (the test command's install step already built it, so
 * this only finds it).
 */
export async function imageRootfs(): Promise<string> {
  const root = (await run('bash', [join(REPO, 'test', 'setup', 'image-rootfs.sh'), testCache()])).trim();
  if (!existsSync(join(root, '.complete'))) throw new Error(`no image root filesystem at ${root}`);
  return root;
}
