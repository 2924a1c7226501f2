// The composition root: builds every part from the config and wires them together.

import type { Config } from './config.js';
import { CredentialStore } from './credentials/store.js';
import { StsRoleAssumer } from './credentials/sts.js';
import { HttpServer } from './http/index.js';
import { createRouter } from './imds/router.js';
import type { Logger } from './log.js';
import { CallerResolver } from './pods/callers.js';
import { PodIndex } from './pods/index.js';
import { duplicateResolver, loadKubeConfig } from './pods/kubernetes.js';
import { RoleAssignment } from './pods/role-assignment.js';
import { ClusterSource, PodsFileSource, type PodSource } from './pods/sources.js';

export interface App {
  port: number;
  index: PodIndex;
  store: CredentialStore;
  assignment: RoleAssignment;
  callers: CallerResolver;
  source: PodSource;
  close(): Promise<void>;
}

export async function startApp(config: Config, log: Logger, host?: string): Promise<App> {
  const { credentials, pods } = config;
  const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  const store = new CredentialStore(new StsRoleAssumer({ region }), {
    sessionTtlMs: credentials.sessionTtlMs,
    errorTtlMs: credentials.errorTtlMs,
    stsRatePerSecond: credentials.stsRatePerSecond,
    stsBurst: Math.max(1, Math.ceil(credentials.stsRatePerSecond * 2)),
  });
  const index = new PodIndex();
  const assignment = new RoleAssignment(store, index, credentials.rolePolicy, pods.restrictions, log);
  const keys = { role: credentials.roleKey, externalId: credentials.externalIdKey };
  let source: PodSource;
  let resolveDuplicate: ((ip: string) => Promise<string | null>) | null = null;
  if (pods.podsFile !== null) {
    source = new PodsFileSource(pods.podsFile, index, assignment, keys, (error) => log.error({ err: error, file: pods.podsFile }, 'pods file not reloaded'));
  } else {
    let kc;
    try {
      kc = loadKubeConfig(pods.connection);
    } catch (error) {
      store.close();
      throw new Error(`no Kubernetes API: ${(error as Error).message}; run in a cluster, or give --kubeconfig, --api-server with --api-token, or --pods-file`);
    }
    source = new ClusterSource(kc, index, assignment, keys, pods.node, {
      onError: (error, restarts) => log.warn({ err: error, restarts }, 'Kubernetes watch failed; retrying, serving the last known pods'),
    });
    if (pods.resolveDuplicates) resolveDuplicate = duplicateResolver(kc);
  }
  const callers = new CallerResolver(index, { waitMs: pods.waitMs, resolveDuplicate });

  const server = new HttpServer(createRouter({ ready: () => source.synced, callers, assignment }), {}, {
    onHandlerError: (error, request) => log.error({ err: error, path: request.path }, 'handler failed'),
  });
  const address = await server.listen(config.appPort, host);
  log.info({ port: address.port, source: pods.podsFile ?? 'kubernetes' }, 'listening');
  if (region === undefined) log.warn('AWS_REGION is not set: STS calls fail until it is');
  void source.whenSynced().then(() => log.info({ pods: index.size }, 'pods synced'));
  return {
    port: address.port,
    index,
    store,
    assignment,
    callers,
    source,
    async close() {
      await server.close();
      source.stop();
      store.close();
    },
  };
}
