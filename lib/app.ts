// The composition root: builds every part from the config and wires them together.

import type { Config } from './config.js';
import { handoverText, takeBack } from './credentials/handover.js';
import { CredentialStore, credentialsUnready } from './credentials/store.js';
import { StsRoleAssumer } from './credentials/sts.js';
import { HttpServer, type Request } from './http/index.js';
import { FailureLog } from './failure-log.js';
import { reportPodsFileFailure, reportStsFailure, reportTokenReviewFailure, reportUpstreamFailure, reportWatchFailure, PODS_NAMED } from './failures.js';
import { CONTAINER_ROUTE_NAMES, ContainerRoute, createContainerRouter, CREDENTIALS_PATH, endpointHosts } from './container-credentials/router.js';
import { requestLogger } from './imds/request-log.js';
import { CredentialAnswerStats, createRouter, Route, ROUTE_NAMES } from './imds/router.js';
import { TokenRegistry } from './imds/tokens.js';
import { errorText, type Logger, type LogSink } from './log.js';
import { discoverRegion, discoverRolePolicy } from './node/instance-profile.js';
import { EndpointAddresses, nodeHasIpv6 } from './node/endpoint-addresses.js';
import { HandoverFile } from './node/handover-file.js';
import { MetadataDnatRule } from './node/iptables.js';
import { CallerResolver, type LiveClaims } from './pods/callers.js';
import { PodIndex } from './pods/pod-index.js';
import { connectKubernetes, liveClaims, tokenReviews, type KubernetesApi } from './pods/kubernetes.js';
import { DEFAULT_TOKEN_REVIEWER_OPTIONS, TokenReviewer } from './pods/token-review.js';
import { PodRoles } from './pods/pod-roles.js';
import { ClusterSource, type PodSource } from './pods/sources.js';
import { type ContainerCredentialsStats, EventLoopDelay, RequestStats, StatsReporter, statsLine } from './stats.js';
import { MetadataUpstream } from './upstream/metadata.js';
import { BUILD_DATE, COMMIT, VERSION } from './version.js';

export interface App {
  port: number;
  index: PodIndex;
  store: CredentialStore;
  podRoles: PodRoles;
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

/** The container-credentials endpoint's addresses, as the EKS Pod Identity Agent's and the SDKs' allow-lists have them. */
export const CONTAINER_CREDENTIALS_ADDRESSES = { v4: '169.254.170.23', v6: 'fd00:ec2::23' };

interface ContainerEndpoint {
  audience: string;
  port: number;
  addresses: string[];
  /** Puts the addresses on the node (--container-credentials-link), or null. */
  link: EndpointAddresses | null;
}

/** Where the container-credentials endpoint listens, or null without --container-credentials. */
function containerEndpointOf(config: Config): ContainerEndpoint | null {
  const flags = config.containerCredentials;
  if (flags === null) return null;
  const { v4, v6 } = CONTAINER_CREDENTIALS_ADDRESSES;
  const addresses = flags.addresses ?? (nodeHasIpv6(flags.link) ? [v4, v6] : [v4]);
  return {
    audience: flags.audience,
    port: flags.port,
    addresses,
    link: flags.link === null ? null : new EndpointAddresses({ link: flags.link, addresses }),
  };
}

/** How often a failure that keeps repeating is written again, when the stats line is off. */
const FAILURE_FOLD_MS = 60_000;

export async function startApp(config: Config, log: Logger, options: AppOptions = {}): Promise<App> {
  const { credentials, pods, serve } = config;
  log.info({ version: VERSION, commit: COMMIT, buildDate: BUILD_DATE, node: process.version, pid: process.pid }, `kube2iam-ts ${VERSION} starting`);
  for (const { flag, replacement } of config.inertFlags) log.warn({ flag }, `${flag} does nothing here: ${replacement}`);
  // Every part started registers its stop here; a failed start and a shutdown both run
  // them, last started first.
  const undo = new UndoList();
  let graceMs = 0;
  try {
    // Checked before anything starts: a proxy that cannot install its rule must not serve.
    const rule =
      config.iptables === null
        ? null
        : new MetadataDnatRule({
            metadataAddr: serve.metadataAddr,
            hostInterface: config.iptables.hostInterface,
            hostIp: config.iptables.hostIp,
            appPort: config.appPort,
          });
    rule?.preflight();
    const containerEndpoint = containerEndpointOf(config);
    containerEndpoint?.link?.preflight();
    // Likewise a proxy with no Kubernetes API to name pods by (before any network call).
    let api: KubernetesApi | null = null;
    if (pods.podsFile === null) {
      try {
        api = await connectKubernetes(pods.connection);
      } catch (error) {
        throw new Error(
          `no Kubernetes API: ${(error as Error).message}; run in a cluster, or give --kubeconfig, --api-server with --api-token, or --pods-file`,
        );
      }
      const cluster = api;
      undo.add(() => cluster.close());
    }
    // Repeated failures are folded per stats interval (one line per key per interval).
    const failures = new FailureLog(log, serve.statsIntervalMs > 0 ? serve.statsIntervalMs : FAILURE_FOLD_MS);
    undo.add(() => failures.stop());
    const upstream = new MetadataUpstream(serve.metadataAddr, { onFailure: (failure) => reportUpstreamFailure(failures, serve.metadataAddr, failure) });
    undo.add(() => upstream.close());
    const rolePolicy = await discoverRolePolicy(credentials.rolePolicy, config.autoDiscover, upstream);
    if (rolePolicy !== credentials.rolePolicy)
      log.info({ baseRoleArn: rolePolicy.baseRoleArn, defaultRole: rolePolicy.defaultRoleArn }, 'roles discovered from the instance profile');
    const region = await stsRegion(upstream, log);

    const index = new PodIndex();
    const store = new CredentialStore(new StsRoleAssumer({ region }), {
      sessionTtlMs: credentials.sessionTtlMs,
      errorTtlMs: credentials.errorTtlMs,
      stsRatePerSecond: credentials.stsRatePerSecond,
      stsBurst: Math.max(1, Math.ceil(credentials.stsRatePerSecond * 2)),
      prefetchWindowMs: credentials.prefetchWindowMs,
      onFailure: (failure) =>
        reportStsFailure(failures, failure, (key) =>
          store.ownersOf(key, PODS_NAMED).map((uid) => {
            const pod = index.get(uid);
            return pod === undefined ? uid : `${pod.namespace}/${pod.name}`;
          }),
        ),
    });
    undo.add(() => store.close());
    if (credentials.handoverFile !== null) {
      const handover = new HandoverFile(credentials.handoverFile);
      await takeOverCredentials(store, handover, log);
      // Run after the servers have closed (undo runs last-added first), so renewals made meanwhile are handed on too.
      undo.add(() => leaveCredentials(store, handover, log));
    }
    const podRoles = new PodRoles(store, index, rolePolicy, pods.restrictions, log, {
      serviceAccountRoles: pods.serviceAccountRoles,
      hostNetworkPods: containerEndpoint !== null,
    });
    const keys = { role: credentials.roleKey, externalId: credentials.externalIdKey };
    // ServiceAccounts are read only when roles may come from them.
    const serviceAccountRoleKey = pods.serviceAccountRoles === 'off' ? null : pods.serviceAccountRoleKey;
    let source: PodSource;
    let watchRestarts = (): number => 0;
    let live: LiveClaims | null = null;
    if (api === null) {
      const file = pods.podsFile as string;
      const { PodsFileSource } = await import('./pods/pods-file.js');
      source = new PodsFileSource(file, index, podRoles, keys, serviceAccountRoleKey, (error) => reportPodsFileFailure(failures, file, error));
    } else {
      const cluster = new ClusterSource(api, index, podRoles, keys, {
        node: pods.node,
        serviceAccountRoleKey,
        onError: (error, failure) => reportWatchFailure(failures, error, failure),
      });
      watchRestarts = () => cluster.restarts;
      source = cluster;
      live = liveClaims(api, keys);
    }
    const watched = source;
    undo.add(() => watched.stop());
    const callers = new CallerResolver(index, { waitMs: pods.waitMs, liveClaims: live, resolveDuplicates: pods.resolveDuplicates });
    // IMDSv2 tokens are issued here, bound to the pod's IP; never the node's.
    const tokens = new TokenRegistry();
    const answerStats = new CredentialAnswerStats();
    const requestStats = new RequestStats(ROUTE_NAMES, [Route.Listing, Route.Credentials]);

    // Removed (when asked) only after the servers have closed: until then pods are sent here.
    let ruleInPlace = rule === null;
    if (rule !== null && config.iptables?.removeOnExit === true) undo.add(() => (ruleInPlace ? removeRule(rule, log) : undefined));
    const link = containerEndpoint?.link ?? null;
    let addressesInPlace = false;
    if (link !== null && config.containerCredentials?.removeOnExit === true) undo.add(() => (addressesInPlace ? removeAddresses(link, log) : undefined));
    // Every server closes at once, so a shutdown takes one grace period, not one per server.
    const servers: HttpServer[] = [];
    let server: HttpServer | null = null;
    let containerListening = containerEndpoint === null;
    // Ready only once pods are listed and, with --iptables, the rule sends pods here (and,
    // with --container-credentials, that endpoint listens too).
    const unavailable = (): string | null => {
      if (server?.shuttingDown === true) return 'shutting down';
      if (!ruleInPlace) return 'iptables rule not installed yet';
      if (!containerListening) return 'container-credentials endpoint not listening yet';
      return source.synced ? null : 'pods not listed yet';
    };
    const router = createRouter(
      {
        unavailable,
        credentialsUnready: () => credentialsUnready(store.health(Date.now())),
        callers,
        podRoles,
        demand: (entry) => store.demand(entry),
        upstream,
        tokens,
        stats: answerStats,
      },
      { allowRoute: serve.allowRoute, imdsv2Required: serve.imdsv2Required, hostIp: serve.hostIp, debug: serve.debug, version: VERSION },
    );
    const count = (request: Request, status: number, ms: number): void => requestStats.record(request.route, status, ms);
    const onHandlerError = (error: unknown, request: Request): void =>
      failures.report('handler', 'error', 'request handler failed; the pod got 500', () => ({ error: errorText(error), path: request.path.slice(0, 200) }));
    // The request log is a different hook, not a test on every request.
    const logRequest = log.isLevelEnabled('debug') ? requestLogger(config.logFormat, options.logSink ?? process.stderr, index, podRoles) : null;
    const http = new HttpServer(
      router,
      {},
      {
        onHandlerError,
        onAnswered:
          logRequest === null
            ? count
            : (request, status, ms) => {
                count(request, status, ms);
                logRequest(request, status, ms);
              },
      },
    );
    server = http;
    undo.add(() => Promise.all(servers.map((listening) => listening.close(graceMs))));
    const address = await http.listen(config.appPort, options.host);
    servers.push(http);
    log.info(
      { port: address.port, source: pods.podsFile ?? 'kubernetes', metadata: serve.metadataAddr, version: VERSION },
      `listening on port ${address.port}`,
    );

    if (rule !== null) {
      // After listening, so pods redirected by the rule never find the port closed.
      const outcome = await rule.ensure();
      ruleInPlace = true;
      log.info({ rule: rule.describe(), outcome }, 'iptables rule in place');
    }
    let container: ContainerCredentialsStats | null = null;
    if (containerEndpoint !== null && api !== null) {
      const { audience, port, addresses } = containerEndpoint;
      const reviewer = new TokenReviewer(tokenReviews(api), { audience, ...DEFAULT_TOKEN_REVIEWER_OPTIONS }, (error) =>
        reportTokenReviewFailure(failures, error),
      );
      if (link !== null) {
        const added = await link.ensure();
        addressesInPlace = true;
        log.info({ link: config.containerCredentials?.link, added }, 'container-credentials addresses in place');
      }
      const containerRequests = new RequestStats(CONTAINER_ROUTE_NAMES, [ContainerRoute.Credentials]);
      container = { requestStats: containerRequests, reviewer };
      const router = createContainerRouter(
        { unavailable, reviewer, index, podRoles, demand: (entry) => store.demand(entry) },
        { hosts: endpointHosts(addresses, port), podWaitMs: pods.waitMs },
      );
      for (const address of addresses) {
        const endpoint = new HttpServer(
          router,
          {},
          { onHandlerError, onAnswered: (request, status, ms) => containerRequests.record(request.route, status, ms) },
        );
        await endpoint.listen(port, address).catch((error: NodeJS.ErrnoException) => {
          throw new Error(`--container-credentials cannot listen on ${address} port ${port}: ${listenProblem(error)}`);
        });
        servers.push(endpoint);
      }
      containerListening = true;
      log.info({ addresses, port, audience }, `serving ${CREDENTIALS_PATH} on ${addresses.join(', ')} port ${port}`);
    }
    const loopDelay = new EventLoopDelay();
    const stats = new StatsReporter(
      serve.statsIntervalMs,
      statsLine({ store, answerStats, requestStats, index, source, watchRestarts, callers, upstream, http, tokens, loopDelay, container }),
      options.statsOut ?? process.stdout,
      config.logFormat,
    );
    stats.start();
    loopDelay.start();
    undo.add(() => {
      stats.stop();
      loopDelay.stop();
    });
    void source.whenSynced().then(() => {
      store.listed();
      log.info({ pods: index.size }, 'pods synced');
    });

    return {
      port: address.port,
      index,
      store,
      podRoles,
      callers,
      source,
      upstream,
      stats,
      async close(grace?: number) {
        graceMs = grace ?? 0;
        await undo.run();
      },
    };
  } catch (error) {
    await undo.run().catch(() => undefined);
    throw error;
  }
}

/**
 * The region STS is called in: AWS_REGION or AWS_DEFAULT_REGION, else the node's from the
 * metadata service, as the SDKs on EC2 find it (kube2iam's own DaemonSet sets none).
 */
async function stsRegion(upstream: MetadataUpstream, log: Logger): Promise<string | undefined> {
  const configured = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  const region =
    configured ??
    (await discoverRegion(upstream).catch((error: unknown) => {
      log.error(
        { error, remedy: 'set AWS_REGION in the DaemonSet, or let the proxy reach the metadata service (--metadata-addr)' },
        'no region: AWS_REGION is not set and the metadata service gave none; every AssumeRole fails',
      );
      return undefined;
    }));
  if (region !== undefined)
    log.info(
      {
        region,
        regionSource: configured === undefined ? 'metadata placement/region' : process.env.AWS_REGION === undefined ? 'AWS_DEFAULT_REGION' : 'AWS_REGION',
      },
      `STS region ${region}`,
    );
  return region;
}

function listenProblem(error: NodeJS.ErrnoException): string {
  if (error.code === 'EADDRINUSE') return 'the port is taken (the EKS Pod Identity Agent serves there: set --container-credentials-port)';
  if (error.code === 'EADDRNOTAVAIL') return 'the address is not on this node';
  if (error.code === 'EACCES') return 'a port under 1024 needs NET_BIND_SERVICE';
  return error.message;
}

/** Serves what the previous proxy on this node left (a restart then calls STS once, for readiness); a file that cannot be used is logged and passed over. */
async function takeOverCredentials(store: CredentialStore, handover: HandoverFile, log: Logger): Promise<void> {
  try {
    const text = await handover.take();
    if (text === null) {
      log.info({ file: handover.path }, 'no credentials handed over (the first proxy on this node, or the last did not stop cleanly)');
      return;
    }
    const now = Date.now();
    const { items, expired, invalid } = takeBack(text, now);
    const taken = store.takeOver(items, now);
    log.info({ file: handover.path, taken, expired, invalid, passedOver: items.length - taken }, `took over ${taken} credentials from the previous proxy`);
  } catch (error) {
    log.warn(
      { file: handover.path, error, remedy: "nothing to do: credentials are fetched from STS instead; delete the file if it is not the proxy's own" },
      `credentials handed over not used: ${errorText(error)}`,
    );
  }
}

async function leaveCredentials(store: CredentialStore, handover: HandoverFile, log: Logger): Promise<void> {
  const now = Date.now();
  const { text, count } = handoverText(store.handOver(now), now);
  try {
    await handover.leave(text);
    log.info({ file: handover.path, left: count }, `left ${count} credentials for the next proxy`);
  } catch (error) {
    log.error(
      { file: handover.path, error, remedy: 'mount a writable hostPath there, as manifests/daemonset.yaml does (root may write it)' },
      'credentials not handed over: the next proxy fetches them all from STS',
    );
  }
}

async function removeAddresses(addresses: EndpointAddresses, log: Logger): Promise<void> {
  try {
    await addresses.remove();
    log.info({}, 'container-credentials addresses removed');
  } catch (error) {
    log.error({ error, remedy: 'delete them by hand: ip addr show shows them' }, 'container-credentials addresses not removed');
  }
}

async function removeRule(rule: MetadataDnatRule, log: Logger): Promise<void> {
  try {
    log.info({ removed: await rule.remove() }, 'iptables rule removed');
  } catch (error) {
    log.error({ error, rule: rule.describe(), remedy: 'delete it by hand: iptables-save | grep 169.254.169.254 shows it' }, 'iptables rule not removed');
  }
}

/** Stops, run last-added first; each runs even when an earlier one failed (the first failure is thrown after). */
class UndoList {
  private readonly steps: Array<() => unknown> = [];

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    let failure: unknown = null;
    for (let step = this.steps.pop(); step !== undefined; step = this.steps.pop()) {
      try {
        await step();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== null) throw failure;
  }
}
