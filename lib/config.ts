// Command-line flags, named and defaulted as kube2iam names them, and their validation.
// One schema (FLAGS) drives the parser, the environment fallbacks, --help and the README's
// flag table; a DaemonSet's arguments are checked against it too.

import { isIP } from 'node:net';
import yargs from 'yargs';
import { isFullArn, normalizeBaseRoleArn, resolveRoleName, type RolePolicy } from './credentials/roles.js';
import { formatDuration, parseDuration } from './duration.js';
import { VERSION_LINE } from './version.js';
import { dnatRuleArgs, IptablesError } from './node/iptables.js';
import type { KubernetesConnection } from './pods/kubernetes.js';
import type { RestrictionConfig } from './pods/pod-roles.js';
import type { ServiceAccountRoles } from './pods/role-decision.js';

export interface CredentialConfig {
  rolePolicy: RolePolicy;
  /** Pod annotation holding the role. */
  roleKey: string;
  /** Pod annotation holding the STS external ID. */
  externalIdKey: string;
  sessionTtlMs: number;
  errorTtlMs: number;
  stsRatePerSecond: number;
  /** Keys of the pods listed at start are first fetched at random points of this window. */
  prefetchWindowMs: number;
  /** --handover-file: where credentials are left at shutdown for the next proxy on the node; null: none. */
  handoverFile: string | null;
}

export interface PodConfig {
  /** --node: watch only this node's pods. */
  node: string | null;
  connection: KubernetesConnection;
  /** --pods-file: pods and namespaces from a file instead of the API server. */
  podsFile: string | null;
  restrictions: RestrictionConfig;
  /** --service-account-roles, and the ServiceAccount annotation it reads. */
  serviceAccountRoles: ServiceAccountRoles;
  serviceAccountRoleKey: string;
  /** --backoff-max-elapsed-time: how long a request from an unknown IP waits for its pod. */
  waitMs: number;
  resolveDuplicates: boolean;
}

export interface ServeConfig {
  /** --metadata-addr: host[:port] of the metadata service other paths pass through to. */
  metadataAddr: string;
  imdsv2Required: boolean;
  allowRoute: RegExp | null;
  /** --host-ip, '' when not given. */
  hostIp: string;
  debug: boolean;
  /** 0: no stats line. */
  statsIntervalMs: number;
}

export interface ContainerCredentialsConfig {
  /** The audience a pod's token must be issued for (TokenRequest's, the projected volume's). */
  audience: string;
  port: number;
  /** The link the endpoint's addresses are put on; null: the node has them already. */
  link: string | null;
  /** Where it listens; null: 169.254.170.23, and fd00:ec2::23 where the node has IPv6. */
  addresses: string[] | null;
  /** --iptables-remove-on-exit: the addresses (and the link made for them) go at shutdown. */
  removeOnExit: boolean;
}

export interface IptablesConfig {
  hostInterface: string;
  hostIp: string;
  removeOnExit: boolean;
}

export interface Config {
  appPort: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  logFormat: 'text' | 'json';
  credentials: CredentialConfig;
  /**
   * --auto-discover-*: taken from the metadata service at start; `defaultRoleName`, a
   * bare --default-role resolved against the discovered base ARN.
   */
  autoDiscover: { baseArn: boolean; defaultRole: boolean; defaultRoleName: string | null };
  pods: PodConfig;
  serve: ServeConfig;
  /** null unless --iptables. */
  iptables: IptablesConfig | null;
  /** null unless --container-credentials. */
  containerCredentials: ContainerCredentialsConfig | null;
  /** kube2iam flags given that do nothing here, each with what replaces it (logged once at start). */
  inertFlags: Array<{ flag: string; replacement: string }>;
}

/** STS takes DurationSeconds 900..43200, and DurationSeconds is twice the session TTL. */
const MIN_SESSION_TTL_MS = 450_000;
const MAX_SESSION_TTL_MS = 21_600_000;

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'warning', 'error', 'fatal', 'panic'] as const;

/** A flag problem the user must fix: printed as one line, exit code 2. */
export class ConfigError extends Error {}

export interface ParseResult {
  config?: Config;
  /** Text to print and exit 0 with (`--help`, `--version`). */
  output?: string;
}

interface FlagSpec {
  type: 'string' | 'boolean' | 'number';
  default: string | boolean | number;
  describe: string;
  /** Accepted so kube2iam's arguments work unchanged, but has no effect here. */
  compat?: boolean;
}

/** Every flag: kube2iam's, with kube2iam's names and defaults, then this proxy's own. */
export const FLAGS: Readonly<Record<string, FlagSpec>> = {
  'app-port': { type: 'string', default: '8181', describe: 'HTTP port to listen on (also the iptables DNAT target port)' },
  'base-role-arn': { type: 'string', default: '', describe: 'Prefix for role names that are not full ARNs, e.g. arn:aws:iam::123456789012:role/' },
  'default-role': { type: 'string', default: '', describe: 'Role for pods without the role annotation (name or ARN); empty: none' },
  'auto-discover-base-arn': { type: 'boolean', default: false, describe: "Take --base-role-arn from the node's instance profile (metadata iam/info)" },
  'auto-discover-default-role': { type: 'boolean', default: false, describe: "Use the node's own instance role as --default-role (and discover the base ARN)" },
  'iam-role-key': { type: 'string', default: 'iam.amazonaws.com/role', describe: 'Pod annotation that names the role' },
  'iam-external-id': { type: 'string', default: 'iam.amazonaws.com/external-id', describe: 'Pod annotation that holds the STS external ID' },
  'iam-role-session-ttl': {
    type: 'string',
    default: '15m',
    describe: 'Credentials are renewed when less than this remains; STS DurationSeconds is twice this (7m30s..6h)',
  },
  'iam-role-error-ttl': { type: 'string', default: '0', describe: 'How long an STS error is answered without trying STS again' },
  'use-regional-sts-endpoint': { type: 'boolean', default: false, compat: true, describe: 'The regional endpoint of AWS_REGION is always used' },
  'namespace-restrictions': { type: 'boolean', default: false, describe: 'Allow only the roles a namespace lists in its allowed-roles annotation' },
  'namespace-restriction-format': { type: 'string', default: 'glob', describe: 'Allow-list patterns: glob (* wildcard) or regexp (whole-ARN match)' },
  'service-account-roles': {
    type: 'string',
    default: 'off',
    describe:
      "Roles from a pod's ServiceAccount annotation (--service-account-role-key), under the same allow-lists: off, fallback (the pod's own annotation wins) or override (the ServiceAccount's wins)",
  },
  'service-account-role-key': {
    type: 'string',
    default: 'eks.amazonaws.com/role-arn',
    describe: "ServiceAccount annotation that names the role (IRSA's by default)",
  },
  'namespace-key': { type: 'string', default: 'iam.amazonaws.com/allowed-roles', describe: 'Namespace annotation holding the JSON array of allowed roles' },
  iptables: { type: 'boolean', default: false, describe: "Add the iptables DNAT rule that sends pods' metadata traffic here (needs --host-ip and NET_ADMIN)" },
  'host-interface': {
    type: 'string',
    default: 'docker0',
    describe: 'Interface pod traffic arrives on, for the iptables rule: a name, a wildcard such as cali+, or !name for all but one',
  },
  'host-ip': { type: 'string', default: '', describe: "This node's IP: the iptables DNAT target; shown by /healthz" },
  'metadata-addr': { type: 'string', default: '169.254.169.254', describe: 'host[:port] of the EC2 metadata service that other paths pass through to' },
  node: { type: 'string', default: '', describe: 'Watch only the pods of this node (spec.nodeName)' },
  kubeconfig: { type: 'string', default: '', describe: 'Path to a kubeconfig; wins over --api-server' },
  'api-server': { type: 'string', default: '', describe: 'API server URL, with --api-token; default: in-cluster' },
  'api-token': { type: 'string', default: '', describe: 'Bearer token for --api-server' },
  insecure: { type: 'boolean', default: false, describe: 'Skip TLS verification of the API server (testing only)' },
  'backoff-max-interval': { type: 'string', default: '1s', compat: true, describe: 'Waiting for a pod is woken by watch events, not by polling' },
  'backoff-max-elapsed-time': { type: 'string', default: '2s', describe: 'How long a request from an IP with no known pod waits for the pod to appear' },
  'resolve-duplicate-cache-ips': { type: 'boolean', default: false, describe: 'Settle an IP claimed by several live pods with a live API lookup' },
  'cache-resync-period': { type: 'string', default: '30m', compat: true, describe: 'The watch re-lists on its own when needed' },
  'metrics-port': { type: 'string', default: '8181', compat: true, describe: 'No Prometheus endpoint: stats go to stdout every --stats-interval' },
  debug: { type: 'boolean', default: false, describe: "Serve /debug/store: every pod IP with its role (shows the node's pods to any caller)" },
  verbose: { type: 'boolean', default: false, describe: 'Debug-level logging (overrides --log-level)' },
  'log-level': { type: 'string', default: 'info', describe: `Log level: ${LOG_LEVELS.join(', ')}` },
  'log-format': { type: 'string', default: 'text', describe: 'Log format: text or json' },
  'pods-file': {
    type: 'string',
    default: '',
    describe: 'Read pods and namespaces from this YAML or JSON file (kubectl get pods,namespaces -o yaml) instead of the API server; reloaded on change',
  },
  'sts-rate-limit': {
    type: 'number',
    default: 20,
    describe: 'STS calls per second from this node at most (bursts of twice that); cut while STS throttles the account, regained slowly',
  },
  'prefetch-window': {
    type: 'string',
    default: '60s',
    describe:
      "Credentials for the pods listed at start are fetched at random points of this window, not at once (a pod's own request goes first); 0 fetches at once",
  },
  'handover-file': {
    type: 'string',
    default: '',
    describe:
      'At shutdown, leave the credentials held in this file (mode 600; a root-only hostPath on tmpfs) for the next proxy on the node, which serves them with no STS call and deletes it',
  },
  'stats-interval': { type: 'string', default: '60s', describe: 'Print one stats line on stdout this often; 0 turns it off' },
  'imdsv2-required': {
    type: 'boolean',
    default: false,
    describe: 'Credential routes need an IMDSv2 token issued through this proxy to the same pod IP, else 401',
  },
  'allow-route-regexp': { type: 'string', default: '', describe: 'Pass through only paths matching this regexp (others get 404), the token PUT included' },
  'container-credentials': {
    type: 'boolean',
    default: false,
    describe:
      "Also serve GET /v1/credentials on 169.254.170.23 (EKS Pod Identity's contract): a pod presents its projected service account token, the API server says whose it is",
  },
  'container-credentials-audience': {
    type: 'string',
    default: 'kube2iam',
    describe: 'The audience the projected tokens pods present to /v1/credentials must carry; tokens for any other audience are refused',
  },
  'container-credentials-link': {
    type: 'string',
    default: 'kube2iam0',
    describe: "Dummy link made to hold the endpoint's addresses (needs NET_ADMIN); lo puts them on loopback; empty: the node has them already",
  },
  'container-credentials-addresses': {
    type: 'string',
    default: '',
    describe: "Comma-separated addresses the endpoint listens on; empty: 169.254.170.23, and fd00:ec2::23 where the node has IPv6 (the SDKs' own)",
  },
  'container-credentials-port': {
    type: 'string',
    default: '80',
    describe: 'Port of the /v1/credentials endpoint (put it in AWS_CONTAINER_CREDENTIALS_FULL_URI when not 80)',
  },
  'iptables-remove-on-exit': {
    type: 'boolean',
    default: false,
    describe:
      "Delete the iptables rule, and the container-credentials addresses, on shutdown (by default they stay, so pods cannot reach the node's credentials while the proxy is down)",
  },
};

/** The environment variable that sets a flag when the command line does not: KUBE2IAM_APP_PORT. */
export function envName(flag: string): string {
  return `KUBE2IAM_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * Go's strconv.ParseBool, which kube2iam's flags use: `--iptables=True` and `=1` turn it
 * on there, so they must here too; anything else is an error, never a silent false.
 * A flag given without a value (`--iptables`) is true.
 */
function goBool(value: unknown, name: string): boolean {
  const text = String(value);
  if (text === '' || text === 'true' || /^(1|t|T|TRUE|True)$/.test(text)) return true;
  if (text === 'false' || /^(0|f|F|FALSE|False)$/.test(text)) return false;
  throw new ConfigError(`${name} must be true or false (1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False), got ${JSON.stringify(text)}`);
}

/** A Kubernetes Service link (`tcp://10.96.0.9:8181`): a Service named like a flag, not a setting. */
const SERVICE_LINK = /^(tcp|udp|sctp):\/\/[^/]+$/;

/**
 * A flag's value from its environment variable, if set. Only variables named after a flag
 * are read, and Service-link values are ignored, so unrelated KUBE2IAM_* variables cannot
 * break the start.
 */
function envValue(flag: string, env: NodeJS.ProcessEnv): string | undefined {
  const value = env[envName(flag)];
  return value === undefined || SERVICE_LINK.test(value) ? undefined : value;
}

const kebab = (name: string): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/_/g, '-');

/**
 * Refuses what kube2iam's pflag refuses or reads differently, before the parser can read
 * it leniently: a flag it does not know (camelCase, another case, a single dash), and a
 * boolean with its value as the next word (`--iptables false` is true to pflag, the word
 * a stray argument). Either could otherwise switch a protection off without a word.
 */
function checkSpellings(argv: readonly string[]): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') return; // the rest are arguments, refused as such
    if (!arg.startsWith('-')) continue;
    const name = arg.replace(/^--?/, '').split('=')[0] as string;
    const spec: FlagSpec | undefined = FLAGS[name];
    const builtIn = name === 'help' || name === 'version';
    if (!arg.startsWith('--') || (spec === undefined && !builtIn)) {
      const suggestion = FLAGS[kebab(name)] === undefined ? null : `--${kebab(name)}`;
      const known =
        suggestion === null
          ? ''
          : arg.startsWith('--')
            ? ` (kube2iam's flags are lower-case with dashes: ${suggestion})`
            : ` (kube2iam's flags start with two dashes: ${suggestion})`;
      throw new ConfigError(`unknown flag ${arg.split('=')[0]}${known}`);
    }
    if (spec === undefined || arg.includes('=')) continue;
    const next = argv[i + 1];
    if (spec.type !== 'boolean')
      i++; // its value, whatever it looks like
    else if (next !== undefined && !next.startsWith('-')) {
      throw new ConfigError(
        `--${name} ${next}: a boolean takes its value after "=" (--${name}=${next}); kube2iam reads "--${name} ${next}" as --${name}=true followed by a stray argument`,
      );
    }
  }
}

export async function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<ParseResult> {
  checkSpellings(argv);
  let output: string | undefined;
  let parser = yargs(argv)
    .scriptName('kube2iam')
    .usage('$0 [flags]\n\nPer-pod AWS IAM credentials for Kubernetes through the EC2 metadata address.')
    .epilog('Every flag can also be set by an environment variable named KUBE2IAM_<FLAG> (KUBE2IAM_APP_PORT, KUBE2IAM_HOST_IP, ...); the command line wins.')
    // A repeated flag takes its last value, as kube2iam's pflag does (never "a,b").
    .parserConfiguration({ 'camel-case-expansion': true, 'strip-aliased': true, 'duplicate-arguments-array': false })
    .env(false);
  for (const [flag, spec] of Object.entries(FLAGS)) {
    const describe = spec.compat === true ? `Kept for kube2iam compatibility: ${spec.describe}` : spec.describe;
    const fromEnv = envValue(flag, env);
    // Booleans are read as text and parsed as Go parses them (goBool).
    parser = parser.option(flag, {
      type: spec.type === 'boolean' ? 'string' : spec.type,
      // No default for booleans: a bare `--flag` must read as '' (true), not as the default.
      default: spec.type === 'boolean' ? undefined : (fromEnv ?? spec.default),
      // Never print a value taken from the environment (it may be --api-token's).
      defaultDescription: fromEnv === undefined ? JSON.stringify(spec.default) : `from ${envName(flag)}`,
      describe: spec.type === 'boolean' ? `${describe} [boolean]` : describe,
    });
  }
  parser = parser
    .version('version', 'Print the version and exit', VERSION_LINE)
    .help('help')
    .strict()
    .exitProcess(false)
    .fail((message, error) => {
      throw new ConfigError(message ?? error?.message ?? 'invalid arguments');
    });
  const args = await parser.parseAsync(argv, {}, (_error, _argv, text) => {
    if (text) output = text;
  });
  if (output !== undefined) return { output };
  if (args._.length > 0) throw new ConfigError(`unexpected argument: ${String(args._[0])}`);
  const given = (flag: string): boolean => argv.some((arg) => arg === `--${flag}` || arg.startsWith(`--${flag}=`));
  for (const [flag, spec] of Object.entries(FLAGS)) {
    if (spec.type !== 'boolean') continue;
    const key = flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    const fromEnv = envValue(flag, env);
    if (given(flag)) args[key] = goBool(args[key] ?? '', `--${flag}`);
    else args[key] = fromEnv === undefined || fromEnv === '' ? spec.default : goBool(fromEnv, envName(flag));
  }

  const appPort = portNumber(args.appPort, '--app-port');
  portNumber(args.metricsPort, '--metrics-port');
  const level = args.verbose === true ? 'debug' : String(args.logLevel).toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(args.logLevel)}`);
  }
  const logLevel = level === 'warning' ? 'warn' : level === 'panic' ? 'fatal' : (level as Config['logLevel']);
  // kube2iam: "json" (any case) selects JSON; anything else is text.
  const logFormat = String(args.logFormat).toLowerCase() === 'json' ? 'json' : 'text';
  const discoverBaseArn = args.autoDiscoverBaseArn === true || args.autoDiscoverDefaultRole === true;
  const credentials = credentialConfig(args, discoverBaseArn);
  const defaultRoleName = credentials.rolePolicy.defaultRoleArn === null && String(args.defaultRole) !== '' ? String(args.defaultRole) : null;
  const autoDiscover = { baseArn: args.autoDiscoverBaseArn === true, defaultRole: args.autoDiscoverDefaultRole === true, defaultRoleName };
  if (autoDiscover.baseArn && credentials.rolePolicy.baseRoleArn !== null)
    throw new ConfigError('--auto-discover-base-arn and --base-role-arn exclude each other');
  if (autoDiscover.defaultRole && String(args.defaultRole) !== '') throw new ConfigError('--auto-discover-default-role and --default-role exclude each other');
  const serve = serveConfig(args);
  const inertFlags = Object.entries(FLAGS)
    .filter(([flag, spec]) => spec.compat === true && (given(flag) || envValue(flag, env) !== undefined))
    .map(([flag, spec]) => ({ flag: `--${flag}`, replacement: spec.describe }));
  return {
    config: {
      appPort,
      logLevel,
      logFormat,
      credentials,
      autoDiscover,
      pods: podConfig(args),
      serve,
      iptables: iptablesConfig(args, serve, appPort),
      containerCredentials: containerCredentialsConfig(args),
      inertFlags,
    },
  };
}

function portNumber(value: unknown, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(String(value)) || n < 1 || n > 65535) throw new ConfigError(`${flag} must be a port number (1-65535), got ${JSON.stringify(value)}`);
  return n;
}

function serveConfig(args: Record<string, unknown>): ServeConfig {
  const metadataAddr = String(args.metadataAddr).trim();
  const address = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(metadataAddr);
  if (address === null || (address[2] !== undefined && (Number(address[2]) < 1 || Number(address[2]) > 65535))) {
    throw new ConfigError(`--metadata-addr must be host or host:port, got ${JSON.stringify(args.metadataAddr)}`);
  }
  let allowRoute: RegExp | null = null;
  const pattern = String(args.allowRouteRegexp);
  if (pattern !== '') {
    try {
      allowRoute = new RegExp(pattern);
    } catch (error) {
      throw new ConfigError(`--allow-route-regexp is not a valid regexp: ${(error as Error).message}`);
    }
  }
  const imdsv2Required = args.imdsv2Required === true;
  if (imdsv2Required && allowRoute !== null && !allowRoute.test('/latest/api/token')) {
    throw new ConfigError('--imdsv2-required needs the token path: --allow-route-regexp must match /latest/api/token');
  }
  const hostIp = String(args.hostIp).trim();
  return { metadataAddr, imdsv2Required, allowRoute, hostIp, debug: args.debug === true, statsIntervalMs: duration(args.statsInterval, '--stats-interval') };
}

function iptablesConfig(args: Record<string, unknown>, serve: ServeConfig, appPort: number): IptablesConfig | null {
  if (args.iptables !== true) return null;
  if (serve.hostIp === '') throw new ConfigError('--iptables needs --host-ip, the address the rule sends pod traffic to');
  const hostInterface = String(args.hostInterface).trim();
  try {
    dnatRuleArgs({ metadataAddr: serve.metadataAddr, hostInterface, hostIp: serve.hostIp, appPort });
  } catch (error) {
    if (error instanceof IptablesError) throw new ConfigError(`--iptables: ${error.message}`);
    throw error;
  }
  return { hostInterface, hostIp: serve.hostIp, removeOnExit: args.iptablesRemoveOnExit === true };
}

function containerCredentialsConfig(args: Record<string, unknown>): ContainerCredentialsConfig | null {
  const port = portNumber(args.containerCredentialsPort, '--container-credentials-port');
  if (args.containerCredentials !== true) return null;
  if (String(args.podsFile).trim() !== '') throw new ConfigError('--container-credentials needs the API server to review tokens: drop --pods-file');
  // Without it the index holds the whole cluster's pods, and a token copied off another node would be served here.
  if (String(args.node).trim() === '') throw new ConfigError('--container-credentials needs --node: a token is served only for a pod of this node');
  const audience = String(args.containerCredentialsAudience).trim();
  if (audience === '') throw new ConfigError('--container-credentials-audience must not be empty');
  const link = String(args.containerCredentialsLink).trim();
  if (link.length > 15 || /[\s/]/.test(link))
    throw new ConfigError(`--container-credentials-link must be an interface name (1-15 characters, no whitespace or "/"), got ${JSON.stringify(link)}`);
  const listed = String(args.containerCredentialsAddresses)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  const invalid = listed.find((a) => isIP(a) === 0);
  if (invalid !== undefined) throw new ConfigError(`--container-credentials-addresses must list IP addresses, got ${JSON.stringify(invalid)}`);
  return { audience, port, link: link === '' ? null : link, addresses: listed.length === 0 ? null : listed, removeOnExit: args.iptablesRemoveOnExit === true };
}

function podConfig(args: Record<string, unknown>): PodConfig {
  const text = (value: unknown): string | null => (String(value).trim() === '' ? null : String(value).trim());
  const format = String(args.namespaceRestrictionFormat).toLowerCase();
  if (format !== 'glob' && format !== 'regexp') {
    throw new ConfigError(`--namespace-restriction-format must be glob or regexp, got ${JSON.stringify(args.namespaceRestrictionFormat)}`);
  }
  const connection: KubernetesConnection = {
    kubeconfig: text(args.kubeconfig),
    apiServer: text(args.apiServer),
    apiToken: text(args.apiToken),
    insecure: args.insecure === true,
  };
  if ((connection.apiServer === null) !== (connection.apiToken === null) && connection.kubeconfig === null) {
    throw new ConfigError('--api-server and --api-token go together');
  }
  const podsFile = text(args.podsFile);
  if (podsFile !== null && (connection.kubeconfig !== null || connection.apiServer !== null)) {
    throw new ConfigError('--pods-file replaces the API server: drop --kubeconfig and --api-server');
  }
  duration(args.backoffMaxInterval, '--backoff-max-interval');
  duration(args.cacheResyncPeriod, '--cache-resync-period');
  if (String(args.namespaceKey).trim() === '') throw new ConfigError('--namespace-key must not be empty');
  const serviceAccountRoles = String(args.serviceAccountRoles).toLowerCase();
  if (serviceAccountRoles !== 'off' && serviceAccountRoles !== 'fallback' && serviceAccountRoles !== 'override') {
    throw new ConfigError(`--service-account-roles must be off, fallback or override, got ${JSON.stringify(args.serviceAccountRoles)}`);
  }
  const serviceAccountRoleKey = String(args.serviceAccountRoleKey).trim();
  if (serviceAccountRoleKey === '') throw new ConfigError('--service-account-role-key must not be empty');
  return {
    node: text(args.node),
    connection,
    podsFile,
    restrictions: { enabled: args.namespaceRestrictions === true, format, key: String(args.namespaceKey) },
    serviceAccountRoles,
    serviceAccountRoleKey,
    waitMs: duration(args.backoffMaxElapsedTime, '--backoff-max-elapsed-time'),
    resolveDuplicates: args.resolveDuplicateCacheIps === true,
  };
}

/** A role name checked for its form alone, before the base it is appended to is known. */
const PLACEHOLDER_BASE = 'arn:aws:iam::000000000000:role/';

function credentialConfig(args: Record<string, unknown>, discoverBaseArn: boolean): CredentialConfig {
  let baseRoleArn: string | null = null;
  if (String(args.baseRoleArn) !== '') {
    try {
      baseRoleArn = normalizeBaseRoleArn(String(args.baseRoleArn));
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  }
  let defaultRoleArn: string | null = null;
  const defaultRole = String(args.defaultRole);
  if (defaultRole !== '') {
    // With the base ARN discovered at start, as kube2iam does, a bare name is resolved
    // then (autoDiscover.defaultRoleName); here only its form is checked.
    const deferred = baseRoleArn === null && discoverBaseArn && !isFullArn(defaultRole);
    const resolved = resolveRoleName(defaultRole, deferred ? PLACEHOLDER_BASE : baseRoleArn);
    if (resolved.kind !== 'role') throw new ConfigError(`--default-role: ${resolved.reason}`);
    if (!deferred) defaultRoleArn = resolved.arn;
  }
  const sessionTtlMs = duration(args.iamRoleSessionTtl, '--iam-role-session-ttl');
  if (sessionTtlMs < MIN_SESSION_TTL_MS || sessionTtlMs > MAX_SESSION_TTL_MS) {
    throw new ConfigError(
      `--iam-role-session-ttl must be between ${formatDuration(MIN_SESSION_TTL_MS)} and ${formatDuration(MAX_SESSION_TTL_MS)} (STS DurationSeconds 900..43200), got ${String(args.iamRoleSessionTtl)}`,
    );
  }
  const stsRatePerSecond = Number(args.stsRateLimit);
  if (!Number.isFinite(stsRatePerSecond) || stsRatePerSecond <= 0)
    throw new ConfigError(`--sts-rate-limit must be a positive number, got ${String(args.stsRateLimit)}`);
  for (const [flag, value] of [
    ['--iam-role-key', args.iamRoleKey],
    ['--iam-external-id', args.iamExternalId],
  ] as const) {
    if (String(value).trim() === '') throw new ConfigError(`${flag} must not be empty`);
  }
  return {
    rolePolicy: { baseRoleArn, defaultRoleArn },
    roleKey: String(args.iamRoleKey),
    externalIdKey: String(args.iamExternalId),
    sessionTtlMs,
    errorTtlMs: duration(args.iamRoleErrorTtl, '--iam-role-error-ttl'),
    stsRatePerSecond,
    prefetchWindowMs: duration(args.prefetchWindow, '--prefetch-window'),
    handoverFile: handoverFile(args.handoverFile),
  };
}

function handoverFile(value: unknown): string | null {
  const path = String(value).trim();
  if (path === '') return null;
  if (!path.startsWith('/') || path.endsWith('/')) throw new ConfigError(`--handover-file must be an absolute file path, got ${JSON.stringify(value)}`);
  return path;
}

function duration(value: unknown, flag: string): number {
  const ms = parseDuration(String(value));
  if (ms === null) throw new ConfigError(`${flag} must be a duration such as 500ms, 2s or 15m, got ${JSON.stringify(value)}`);
  return ms;
}
