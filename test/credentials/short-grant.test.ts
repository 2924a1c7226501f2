// Renewal when STS grants less than asked (found by test/reliability/faults.test.ts,
// whose STS fault injector cuts granted lifetimes so renewals fall inside the run): the
// store renewed at half the grant, which for a grant under twice the stale margin is
// after the credentials stop being served, so pods got 500s while STS was healthy.

import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { CredentialStore } from '../../lib/credentials/store.js';
import { StsRoleAssumer } from '../../lib/credentials/sts.js';
import { MotoServer } from '../harness/moto.js';
import { StsFaultInjector } from '../harness/sts-faults.js';

t.test('credentials granted for less than twice the stale margin are renewed before they stop being served', async (t) => {
  const moto = await MotoServer.start();
  t.teardown(() => moto.stop());
  // moto behind the injector: every grant cut to 3 s, whatever DurationSeconds asked.
  const sts = await StsFaultInjector.start({ host: moto.host, port: moto.port }, { lifetimeSeconds: 3 });
  t.teardown(() => sts.close());
  const store = new CredentialStore(
    new StsRoleAssumer({ region: 'us-east-1', endpoint: sts.endpoint, credentials: { accessKeyId: 'AKIDNODE', secretAccessKey: 'x' }, maxAttempts: 1 }),
    // Served until 2 s before expiry: 1 s of a 3 s grant; half the grant (1.5 s) is too late.
    { sessionTtlMs: 15 * 60_000, errorTtlMs: 0, staleMarginMs: 2_000 },
  );
  t.teardown(() => store.close());
  const entry = store.acquire('pod-a', { roleArn: 'arn:aws:iam::123456789012:role/app', sessionName: 'ns.app', externalId: null });
  await entry.fetching;
  t.ok(entry.current(Date.now()) !== null, 'served after the first fetch');
  let gaps = 0;
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if (entry.current(Date.now()) === null) gaps++;
    await sleep(10);
  }
  t.ok(store.stats.renewals >= 3, `${store.stats.renewals} renewals in 5 s`);
  t.equal(store.stats.stsErrors, 0, 'STS never failed');
  t.equal(gaps, 0, 'never without servable credentials while STS answers');
});
