// The container image's recipe, checked stage by stage without a Docker engine (none runs
// on these machines): the build stage compiles exactly the files it copies, the runtime
// stage installs production dependencies only with its own `npm ci`, and its entry point
// runs with the image's environment. kube2iam-daemonset.test.ts then runs the result in a
// root filesystem built from the same ingredients.

import t from 'tap';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../harness/environment.js';
import { execute } from '../harness/processes.js';
import {
  buildStage,
  copies,
  dockerfile,
  dockerignore,
  entrypoint,
  imageEnv,
  imageUser,
  replayStages,
  runtimeInstall,
  runtimeStage,
  stages,
} from './runtime-stage.js';
import { CLOSED_ADDRESS } from '../harness/ports.js';

t.test('two stages on Node 24 LTS: build, then a runtime that runs the built program as root, as kube2iam’s image', async (t) => {
  t.equal(stages.length, 2);
  t.equal(buildStage.name, 'build');
  t.equal(buildStage.from, 'node:24-bookworm-slim', 'the build stage on Node 24, Debian 12');
  t.equal(runtimeStage.from, 'node:24-bookworm-slim', 'the runtime on the same base');
  t.same(entrypoint(), ['node', '/app/dist/bin/kube2iam.js'], 'the entry point is the built program');
  t.equal(imageUser(), 'root', 'kube2iam’s DaemonSet sets no runAsUser and needs NET_ADMIN for --iptables');
  t.ok(
    runtimeStage.lines.some((line) => /apt-get install .*\biptables\b/.test(line)),
    'the iptables tools --iptables runs',
  );
  t.notOk('AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED' in imageEnv(), 'no SDK warning to silence on a supported Node');
  t.equal(imageEnv().NODE_ENV, 'production');
});

t.test('every file the build copies exists and is not excluded by .dockerignore', async (t) => {
  for (const copy of copies(buildStage)
    .concat(copies(runtimeStage))
    .filter((c) => c.from === null)) {
    for (const source of copy.sources) {
      t.ok(existsSync(join(REPO, source)), `${source} exists`);
      t.notOk(dockerignore.includes(source.replace(/\/$/, '')), `${source} is sent to the build`);
    }
  }
});

t.test('replayed, the stages build a runtime that starts with production dependencies only', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'k2i-image-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  t.ok(buildStage.lines.includes('RUN npm ci --no-audit --no-fund'));
  t.ok(buildStage.lines.includes('RUN npx tsc -p .'));
  t.same(runtimeInstall().slice(0, 3), ['npm', 'ci', '--omit=dev'], 'the runtime installs production dependencies only');
  const { appDir } = await replayStages(work);
  for (const dev of ['typescript', 'tap', 'node']) t.notOk(existsSync(join(appDir, 'node_modules', dev)), `${dev} is not in the image`);

  const nodeOptions = imageEnv().NODE_OPTIONS ?? '';
  t.match(nodeOptions, /--max-old-space-size=\d+/, 'the image bounds the heap');
  // `env -i`: only the image's environment (tap adds its loaders to NODE_OPTIONS of children).
  const started = await execute(
    'env',
    [
      '-i',
      `PATH=${process.env.PATH ?? ''}`,
      `NODE_OPTIONS=${nodeOptions}`,
      'NODE_ENV=production',
      process.execPath,
      join(appDir, 'dist', 'bin', 'kube2iam.js'),
      '--version',
    ],
    { cwd: appDir },
  );
  t.equal(started.code, 0, started.stderr);
  t.match(
    started.stdout,
    /^Version: \d+\.\d+\.\d+ - Commit: unknown - Date: \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\n$/,
    'kube2iam’s --version line, with the build record the image holds',
  );
  t.equal(started.stderr, '', 'no warning on start (a Node the SDK supports)');
  const help = await execute(
    'env',
    [
      '-i',
      `PATH=${process.env.PATH ?? ''}`,
      process.execPath,
      join(appDir, 'dist', 'bin', 'kube2iam.js'),
      '--pods-file',
      join(REPO, 'manifests', 'examples', 'pods.yaml'),
      '--metadata-addr',
      CLOSED_ADDRESS,
      '--app-port',
      '70000',
    ],
    { cwd: appDir },
  );
  t.equal(help.code, 2, 'flags are parsed by the image’s program (a bad port is refused)');
});

t.test('the Dockerfile names no Node 20 and no Node version but 24', async (t) => {
  t.notMatch(dockerfile, /node:(?!24-)\d+/);
});
