// The composition root's undo list: a start that fails part-way stops every part it had
// started (the pods file's watcher, the credential store's timers, the failure log, the
// metadata pool), and so does a shutdown. The pod has no role, so no STS call is in
// flight: the SDK's own retry timer would outlive a call cut short.

import t from 'tap';
import { createHook } from 'node:async_hooks';
import { createServer } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp } from '../lib/app.js';
import { parseArgs } from '../lib/config.js';
import { createLogger } from '../lib/log.js';
import { configOf, podsFileFlags } from './harness/config.js';
import { LogCapture } from './harness/log-lines.js';
import { podsFile } from './harness/pods-file.js';
import { eventually } from './harness/wait.js';
import { CLOSED_ADDRESS } from './harness/ports.js';

/** Kinds of what the app could leave behind: timers, file watchers, sockets and servers. */
const KINDS = new Set(['Timeout', 'FSEVENTWRAP', 'STATWATCHER', 'TCPWRAP', 'TCPSERVERWRAP', 'TCPCONNECTWRAP']);

/** Made by the test runner or the tests (their own waits), not by the app. */
const NOT_THE_APP = /@tapjs|node_modules\/tap\/|\/test\//;

/** The code that made the resource: the first frame outside Node's own modules after the hook's. */
function creator(stack: string): string {
  const frames = stack.split('\n').filter((frame) => frame.includes(' at '));
  const hook = frames.findIndex((frame) => frame.includes('node:internal/async_hooks'));
  return frames.slice(hook).find((frame) => !frame.includes('node:')) ?? '';
}

/** Tracks the resources of those kinds the app creates from now on that are not yet destroyed (referenced or not). */
function track(): { live: () => string[]; made: () => string[]; stop: () => void } {
  const live = new Map<number, string>();
  const by = new Map<number, string>();
  const hook = createHook({
    init: (id, type) => {
      const made = creator(new Error().stack ?? '');
      if (!KINDS.has(type) || NOT_THE_APP.test(made)) return;
      live.set(id, type);
      by.set(id, made.trim());
    },
    destroy: (id) => {
      live.delete(id);
    },
  }).enable();
  return { live: () => [...live.values()].sort(), made: () => [...live.keys()].map((id) => `${live.get(id)} ${by.get(id)}`), stop: () => hook.disable() };
}

t.test('a start that fails at listen (the port taken) leaves nothing of its own running', async (t) => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const port = (taken.address() as { port: number }).port;
  const file = podsFile(mkdtempSync(join(tmpdir(), 'k2i-app-')), 'pods', [{ name: 'app', ip: '127.0.0.2' }]);
  const flags = await podsFileFlags(file, CLOSED_ADDRESS, '--base-role-arn', 'arn:aws:iam::123456789012:role/', '--stats-interval', '1s');
  const config = configOf(await parseArgs([...flags, '--app-port', String(port)]));
  const tracked = track();
  t.teardown(tracked.stop);
  await t.rejects(startApp(config, createLogger({ logLevel: 'fatal', logFormat: 'json' }, new LogCapture()), { host: '127.0.0.1' }), /EADDRINUSE/);
  // undici's shared timer wheel stops itself a tick after its last timeout is gone.
  await eventually(() => tracked.live().length === 0, 3000);
  t.same(tracked.live(), [], 'no timer, watcher or socket it made is left', { made: tracked.made() });
});

t.test('a shutdown stops every part', async (t) => {
  const file = podsFile(mkdtempSync(join(tmpdir(), 'k2i-app-')), 'pods', [{ name: 'app', ip: '127.0.0.2' }]);
  const config = configOf(
    await parseArgs(await podsFileFlags(file, CLOSED_ADDRESS, '--base-role-arn', 'arn:aws:iam::123456789012:role/', '--stats-interval', '1s')),
  );
  const tracked = track();
  t.teardown(tracked.stop);
  const app = await startApp(config, createLogger({ logLevel: 'fatal', logFormat: 'json' }, new LogCapture()), {
    host: '127.0.0.1',
    statsOut: new LogCapture(),
  });
  t.ok(tracked.live().includes('TCPSERVERWRAP') && tracked.live().includes('Timeout'), `running, it holds ${tracked.live().join(', ')}`);
  await app.close();
  await eventually(() => tracked.live().length === 0, 3000);
  t.same(tracked.live(), [], 'closed, nothing it made is left', { made: tracked.made() });
});
