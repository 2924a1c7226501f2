// The composition root: builds every part from the config and wires them together.

import type { Config } from './config.js';
import { CredentialStore, credentialsUnready } from './credentials/store.js';
import { StsRoleAssumer } from './credentials/sts.js';
import { HttpServer, type Request } from './http/index.js';
import { FailureLog } from './failure-log.js';
import { reportPodsFileFailure, reportStsFailure, reportUpstreamFailure, reportWatchFailure, PODS_NAMED } from './failures.js';
import { requestLogger } from './imds/request-log.js';
import { CredentialAnswerStats, createRouter, Route, ROUTE_NAMES } from './imds/router.js';
import { TokenRegistry } from './imds/tokens.js';
import { errorText, type Logger, type LogSink } from './log.js';
import { discoverRegion, discoverRolePolicy } from './node/instance-profile.js';
import { MetadataDnatRule } from './node/iptables.js';
import { CallerResolver, type LiveClaims } from './pods/callers.js';
import { PodIndex } from './pods/index.js';
import { connectKubernetes, liveClaims, type KubernetesApi } from './pods/kubernetes.js';
import { RoleAssignment } from './pods/role-assignment.js';
import { ClusterSource, type PodSource } from './pods/sources.js';
import { CounterDeltas, EventLoopDelay, RequestStats, StatsReporter } from './stats.js';
import { MetadataUpstream } from './upstream/metadata.js';
import { BUILD_DATE, COMMIT, VERSION } from './version.js';

export interface App {
  port: number;
  index: PodIndex;
  store: CredentialStore;
  assignment: RoleAssignment;
  callers: CallerResolver;
  source: PodSource;
  upstream: MetadataUpstream;
  stats: StatsReporter;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), and stops everything else. */
  close(graceMs?: number): Promise<void>;
}

export interface AppOptions {
  /** Listen address; all interfaces when omitted, as kube2iam. */
  host?: string;
  /** Where stats lines go (stdout). */
  statsOut?: NodeJS.WritableStream;
  /** Where the logger writes, for the request log's lines (stderr). */
  logSink?: LogSink;
}

/** How often a failure that keeps repeating is written again, when the stats line is off. */
const FAILURE_FOLD_MS = 60_000;

export async function startApp(config: Config, log: Logger, options: AppOptions = {}): Promise<App> {
  const { credentials, pods, serve } = config;
  log.info({ version: VERSION, commit: COMMIT, buildDate: BUILD_DATE, node: process.version, pid: process.pid }, `kube2iam-ts ${VERSION} starting`);
  for (const { flag, replacement } of config.inertFlags) log.warn({ flag }, `${flag} does nothing here: ${replacement}`);
  // Checked before anything starts: a proxy that cannot install its rule must not serve.
  const rule = config.iptables === null ? null : new MetadataDnatRule({ metadataAddr: serve.metadataAddr, hostInterface: config.iptables.hostInterface, hostIp: config.iptables.hostIp, appPort: config.appPort });
  rule?.preflight();
  // Likewise a proxy with no Kubernetes API to name pods by (before any network call).
  let api: KubernetesApi | null = null;
  if (pods.podsFile === null) {
    try {
      api = await connectKubernetes(pods.connection);
    } catch (error) {
      throw new Error(`no Kubernetes API: ${(error as Error).message}; run in a cluster, or give --kubeconfig, --api-server with --api-token, or --pods-file`);
    }
  }
  // Repeated failures are folded per stats interval (one line per key per interval).
  const failures = new FailureLog(log, serve.statsIntervalMs > 0 ? serve.statsIntervalMs : FAILURE_FOLD_MS);
  const upstream = new MetadataUpstream(serve.metadataAddr, { onFailure: (failure) => reportUpstreamFailure(failures, serve.metadataAddr, failure) });
  let rolePolicy;
  try {
    rolePolicy = await discoverRolePolicy(credentials.rolePolicy, config.autoDiscover, upstream);
  } catch (error) {
    failures.stop();
    await Promise.all([upstream.close(), api?.close()]);
    throw error;
  }
  if (rolePolicy !== credentials.rolePolicy) log.info({ baseRoleArn: rolePolicy.baseRoleArn, defaultRole: rolePolicy.defaultRoleArn }, 'roles discovered from the instance profile');

  // kube2iam's own DaemonSet sets no AWS_REGION; the SDKs on EC2 then take the node's.
  const configuredRegion = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  const region = configuredRegion ?? (await discoverRegion(upstream).catch((error: unknown) => {
    log.error({ error, remedy: 'set AWS_REGION in the DaemonSet, or let the proxy reach the metadata service (--metadata-addr)' }, 'no region: AWS_REGION is not set and the metadata service gave none; every AssumeRole fails');
    return undefined;
  }));
  if (region !== undefined) log.info({ region, regionSource: configuredRegion === undefined ? 'metadata placement/region' : process.env.AWS_REGION === undefined ? 'AWS_DEFAULT_REGION' : 'AWS_REGION' }, `STS region ${region}`);
  const store = new CredentialStore(new StsRoleAssumer({ region }), {
    sessionTtlMs: credentials.sessionTtlMs,
    errorTtlMs: credentials.errorTtlMs,
    stsRatePerSecond: credentials.stsRatePerSecond,
    stsBurst: Math.max(1, Math.ceil(credentials.stsRatePerSecond * 2)),
    onFailure: (failure) => reportStsFailure(failures, failure, podsOf),
  });
  const podsOf = (key: string): string[] =>
    store.ownersOf(key, PODS_NAMED).map((uid) => {
      const pod = index.get(uid);
      return pod === undefined ? uid : `${pod.namespace}/${pod.name}`;
    });
  const index = new PodIndex();
  const assignment = new RoleAssignment(store, index, rolePolicy, pods.restrictions, log);
  const keys = { role: credentials.roleKey, externalId: credentials.externalIdKey };
  let source: PodSource;
  let watchRestarts = (): number => 0;
  let live: LiveClaims | null = null;
  if (api === null) {
    const { PodsFileSource } = await import('./pods/pods-file.js');
    source = new PodsFileSource(pods.podsFile as string, index, assignment, keys, (error) => reportPodsFileFailure(failures, pods.podsFile as string, error));
  } else {
    const cluster = new ClusterSource(api, index, assignment, keys, pods.node, {
      onError: (error, failure) => reportWatchFailure(failures, error, failure),
    });
    watchRestarts = () => cluster.pods.restarts + cluster.namespaces.restarts;
    source = cluster;
    live = liveClaims(api, keys);
  }
  const callers = new CallerResolver(index, { waitMs: pods.waitMs, liveClaims: live, resolveDuplicates: pods.resolveDuplicates });
  // IMDSv2 tokens are issued here, bound to the pod's IP; never the node's.
  const tokens = new TokenRegistry();
  const answerStats = new CredentialAnswerStats();
  const requestStats = new RequestStats(ROUTE_NAMES, [Route.Listing, Route.Credentials]);

  let server: HttpServer | null = null;
  // Ready only once pods are listed and, with --iptables, the rule sends pods here.
  let ruleInPlace = rule === null;
  const unavailable = (): string | null => {
    if (server?.shuttingDown === true) return 'shutting down';
    if (!ruleInPlace) return 'iptables rule not installed yet';
    return source.synced ? null : 'pods not listed yet';
  };
  const router = createRouter(
    { unavailable, credentialsUnready: () => credentialsUnready(store.health(Date.now())), callers, assignment, upstream, tokens, stats: answerStats },
    { allowRoute: serve.allowRoute, imdsv2Required: serve.imdsv2Required, hostIp: serve.hostIp, debug: serve.debug, version: VERSION },
  );
  const count = (request: Request, status: number, ms: number): void => requestStats.record(request.route, status, ms);
  // The request log is a different hook, not a test on every request.
  const logRequest = log.isLevelEnabled('debug') ? requestLogger(config.logFormat, options.logSink ?? process.stderr, index, assignment) : null;
  server = new HttpServer(router, {}, {
    onHandlerError: (error, request) => failures.report('handler', 'error', 'request handler failed; the pod got 500', () => ({ error: errorText(error), path: request.path.slice(0, 200) })),
    onAnswered:
      logRequest === null
        ? count
        : (request, status, ms) => {
            count(request, status, ms);
            logRequest(request, status, ms);
          },
  });
  const http = server;

  const deltas = new CounterDeltas();
  const loopDelay = new EventLoopDelay();
  const stats = new StatsReporter(
    serve.statsIntervalMs,
    (seconds) => {
      const sts = deltas.take('sts', store.stats);
      const latency = requestStats.credentialLatency;
      const line = {
        seconds,
        requests: requestStats.take(),
        credentialLatencyMs: { count: latency.count, p50: round(latency.quantile(0.5)), p99: round(latency.quantile(0.99)), max: round(latency.maxMs) },
        store: { ...deltas.take('answers', answerStats), roles: store.size, retained: store.retainedCount, pending: store.pending, ...deltas.take('store', { reused: store.stats.reused, dropped: store.stats.dropped }) },
        sts: { calls: sts.stsCalls, errors: sts.stsErrors, renewals: sts.renewals, rateLimited: sts.rateLimited, latencyAvgMs: sts.stsCalls > 0 ? round(sts.stsLatencyTotalMs / sts.stsCalls) : 0, latencyMaxMs: round(store.stats.stsLatencyMaxMs) },
        pods: { indexed: index.size, ips: index.ipCount, synced: source.synced, ...deltas.take('callers', { liveLookups: callers.liveLookups, liveLookupsLimited: callers.liveLookupsLimited }) },
        watch: { restarts: deltas.take('watch', { restarts: watchRestarts() }).restarts },
        upstream: deltas.take('upstream', upstream.stats),
        http: { open: http.connectionCount, ...deltas.take('http', http.stats) },
        tokens: tokens.size,
        loopDelayMs: loopDelay.take(),
        memoryMb: memoryMb(),
      };
      latency.reset();
      return line;
    },
    options.statsOut ?? process.stdout,
    config.logFormat,
  );

  const address = await server.listen(config.appPort, options.host);
  log.info({ port: address.port, source: pods.podsFile ?? 'kubernetes', metadata: serve.metadataAddr, version: VERSION }, `listening on port ${address.port}`);

  if (rule !== null) {
    // After listening, so pods redirected by the rule never find the port closed.
    try {
      const outcome = await rule.ensure();
      ruleInPlace = true;
      log.info({ rule: rule.describe(), outcome }, 'iptables rule in place');
    } catch (error) {
      await server.close(0);
      failures.stop();
      source.stop();
      store.close();
      await Promise.all([upstream.close(), api?.close()]);
      throw error;
    }
  }
  stats.start();
  loopDelay.start();
  void source.whenSynced().then(() => log.info({ pods: index.size }, 'pods synced'));

  const removeRule = config.iptables?.removeOnExit === true ? rule : null;
  return {
    port: address.port,
    index,
    store,
    assignment,
    callers,
    source,
    upstream,
    stats,
    async close(graceMs?: number) {
      await http.close(graceMs);
      stats.stop();
      loopDelay.stop();
      failures.stop();
      source.stop();
      store.close();
      await Promise.all([upstream.close(), api?.close()]);
      if (removeRule !== null) {
        const removed = await removeRule.remove().catch((error: unknown) => {
          log.error({ error, rule: removeRule.describe(), remedy: 'delete it by hand: iptables -t nat -D PREROUTING ... (iptables-save | grep 169.254.169.254 shows it)' }, 'iptables rule not removed');
          return 0;
        });
        log.info({ removed }, 'iptables rule removed');
      }
    },
  };
}

/** What an operator sizes the DaemonSet's memory by: the process's RSS, and the live JavaScript heap in it. */
function memoryMb(): { rss: number; heapUsed: number } {
  const { rss, heapUsed } = process.memoryUsage();
  return { rss: Math.round(rss / 1048576), heapUsed: Math.round(heapUsed / 1048576) };
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
