// The watch's back-off after it has worked again (found by test/reliability/faults.test.ts,
// where a watch cut after an API server restart took 4-8 s to come back): failures were
// forgotten only when a watch ended cleanly, so a watch that delivered events and was
// then cut kept every earlier failure, and each outage made the next reconnection wait
// longer, up to the 30 s maximum, however healthy the watch had been in between.

import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubernetesApi } from '../../lib/pods/kubernetes.js';
import { ResourceWatch, type WatchConsumer } from '../../lib/pods/watch.js';
import { KubernetesControlPlane } from '../harness/kubernetes.js';
import { FaultRelay } from '../harness/relay.js';
import { eventually } from '../harness/wait.js';

/** A watch of every pod, its back-off from 200 ms. */
function podWatch(api: KubernetesApi, consumer: WatchConsumer, onError: (error: unknown) => void = () => {}): ResourceWatch {
  return new ResourceWatch(api, '/api/v1/pods', undefined, consumer, { pageSize: 500, watchSeconds: 300, backoffBaseMs: 200, backoffMaxMs: 30_000, onError });
}

t.test('a watch that delivered events after an outage starts its back-off over when it is cut again', async (t) => {
  const plane = await KubernetesControlPlane.start();
  t.teardown(() => plane.stop());
  const api = new URL(plane.apiServerUrl);
  const relay = await new FaultRelay({ host: api.hostname, port: Number(api.port) }).listen();
  t.teardown(() => relay.close());
  // The watch goes through the relay (the serving certificate names 127.0.0.1, any port); the test's own calls do not.
  const viaRelay = plane.proxyApi(`https://${relay.address}`);
  t.teardown(() => viaRelay.close());
  const core = plane.core();
  await core.createNamespace({ body: { metadata: { name: 'backoff' } } });

  const seen = new Set<string>();
  const name = (item: unknown): string => (item as { metadata?: { name?: string } }).metadata?.name ?? '';
  const consumer: WatchConsumer = {
    listPage: (items) => {
      for (const item of items) seen.add(name(item));
    },
    listEnd: () => {},
    listAborted: () => {},
    added: (item) => seen.add(name(item)),
    modified: () => {},
    deleted: () => {},
  };
  const watch = podWatch(viaRelay, consumer);
  watch.start();
  t.teardown(() => watch.stop());
  await watch.whenSynced();
  const pod = async (podName: string): Promise<void> => {
    await core.createNamespacedPod({
      namespace: 'backoff',
      body: { metadata: { name: podName }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'busybox' }] } },
    });
  };

  // Outages of a second or two, each followed by a watch that delivers again.
  for (let outage = 0; outage < 4; outage++) {
    await relay.refuse();
    await sleep(1_500);
    await relay.resume();
    await pod(`after-outage-${outage}`);
    t.ok(await eventually(() => seen.has(`after-outage-${outage}`), 30_000), `outage ${outage}: the watch delivers again`);
  }
  const restarts = watch.restarts;
  t.ok(restarts >= 4, `${restarts} failed attempts during the outages`);

  // One more brief outage: a healthy watch cut now comes back after a first-failure back-off, not the maximum.
  await relay.refuse();
  await sleep(300);
  await relay.resume();
  const resumed = Date.now();
  await pod('after-last-cut');
  t.ok(await eventually(() => seen.has('after-last-cut'), 30_000), 'the pod created after the last outage is seen');
  const ms = Date.now() - resumed;
  t.ok(ms < 3_000, `seen ${ms} ms after the API was reachable again`);
});

t.test(
  'a watch with nothing to say for longer than 30 s (client-node’s inactivity bound, before the proxy had its own client) is no failure: no restart counted, no error logged',
  async (t) => {
    const plane = await KubernetesControlPlane.start();
    t.teardown(() => plane.stop());
    const api = plane.proxyApi();
    t.teardown(() => api.close());
    const errors: unknown[] = [];
    const added: string[] = [];
    const consumer: WatchConsumer = {
      listPage: () => {},
      listEnd: () => {},
      listAborted: () => {},
      added: (item) => added.push((item as { metadata: { name: string } }).metadata.name),
      modified: () => {},
      deleted: () => {},
    };
    const watch = podWatch(api, consumer, (error) => errors.push(error));
    watch.start();
    t.teardown(() => watch.stop());
    await watch.whenSynced();
    await sleep(36_000); // a quiet node's pod watch
    t.same(errors, [], 'nothing to log');
    t.equal(watch.restarts, 0, 'no restart counted');
    const core = plane.core();
    await core.createNamespace({ body: { metadata: { name: 'quiet' } } });
    await core.createNamespacedPod({
      namespace: 'quiet',
      body: { metadata: { name: 'after-quiet' }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'busybox' }] } },
    });
    t.ok(await eventually(() => added.includes('after-quiet'), 10_000), 'and the watch still delivers');
  },
);
