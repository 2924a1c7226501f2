// Command-line flags, named and defaulted as kube2iam names them, and their validation.
// Later work adds the rest of kube2iam's flags here; a DaemonSet's arguments are checked
// against this same schema.

import yargs from 'yargs';
import { normalizeBaseRoleArn, resolveRoleName, type RolePolicy } from './credentials/roles.js';
import { formatDuration, parseDuration } from './duration.js';
import type { KubernetesConnection } from './pods/kubernetes.js';
import type { RestrictionConfig } from './pods/role-assignment.js';

export interface CredentialConfig {
  rolePolicy: RolePolicy;
  /** Pod annotation holding the role. */
  roleKey: string;
  /** Pod annotation holding the STS external ID. */
  externalIdKey: string;
  sessionTtlMs: number;
  errorTtlMs: number;
  stsRatePerSecond: number;
}

export interface PodConfig {
  /** --node: watch only this node's pods. */
  node: string | null;
  connection: KubernetesConnection;
  /** --pods-file: pods and namespaces from a file instead of the API server. */
  podsFile: string | null;
  restrictions: RestrictionConfig;
  /** --backoff-max-elapsed-time: how long a request from an unknown IP waits for its pod. */
  waitMs: number;
  resolveDuplicates: boolean;
}

export interface Config {
  appPort: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  logFormat: 'text' | 'json';
  credentials: CredentialConfig;
  pods: PodConfig;
}

/** STS takes DurationSeconds 900..43200, and DurationSeconds is twice the session TTL. */
const MIN_SESSION_TTL_MS = 450_000;
const MAX_SESSION_TTL_MS = 21_600_000;

export const VERSION = '0.1.0';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'warning', 'error', 'fatal', 'panic'] as const;

/** A flag problem the user must fix: printed as one line, exit code 2. */
export class ConfigError extends Error {}

export interface ParseResult {
  config?: Config;
  /** Text to print and exit 0 with (`--help`, `--version`). */
  output?: string;
}

export async function parseArgs(argv: string[]): Promise<ParseResult> {
  let output: string | undefined;
  const parser = yargs(argv)
    .scriptName('kube2iam')
    .usage('$0 [flags]\n\nPer-pod AWS IAM credentials for Kubernetes through the EC2 metadata address.')
    .parserConfiguration({ 'camel-case-expansion': true, 'strip-aliased': true })
    .option('app-port', { type: 'string', default: '8181', describe: 'HTTP port to listen on (also the iptables DNAT target port)' })
    .option('log-level', { type: 'string', default: 'info', describe: `Log level: ${LOG_LEVELS.join(', ')}` })
    .option('log-format', { type: 'string', default: 'text', describe: 'Log format: text or json' })
    .option('base-role-arn', { type: 'string', default: '', describe: 'Prefix for role names that are not full ARNs, e.g. arn:aws:iam::123456789012:role/' })
    .option('default-role', { type: 'string', default: '', describe: 'Role for pods without the role annotation (name or ARN); empty: none' })
    .option('iam-role-key', { type: 'string', default: 'iam.amazonaws.com/role', describe: 'Pod annotation that names the role' })
    .option('iam-external-id', { type: 'string', default: 'iam.amazonaws.com/external-id', describe: 'Pod annotation that holds the STS external ID' })
    .option('iam-role-session-ttl', { type: 'string', default: '15m', describe: 'Credentials are renewed when less than this remains; STS DurationSeconds is twice this (7m30s..6h)' })
    .option('iam-role-error-ttl', { type: 'string', default: '0', describe: 'How long an STS error is answered without trying STS again' })
    .option('sts-rate-limit', { type: 'number', default: 20, describe: 'STS calls per second from this node at most (bursts of twice that)' })
    .option('use-regional-sts-endpoint', { type: 'boolean', default: false, describe: 'Kept for kube2iam compatibility: the regional endpoint of AWS_REGION is always used' })
    .option('node', { type: 'string', default: '', describe: 'Watch only the pods of this node (spec.nodeName)' })
    .option('kubeconfig', { type: 'string', default: '', describe: 'Path to a kubeconfig; wins over --api-server' })
    .option('api-server', { type: 'string', default: '', describe: 'API server URL, with --api-token; default: in-cluster' })
    .option('api-token', { type: 'string', default: '', describe: 'Bearer token for --api-server' })
    .option('insecure', { type: 'boolean', default: false, describe: 'Skip TLS verification of the API server (testing only)' })
    .option('pods-file', { type: 'string', default: '', describe: 'Read pods and namespaces from this YAML or JSON file (kubectl get pods,namespaces -o yaml) instead of the API server; reloaded on change' })
    .option('namespace-restrictions', { type: 'boolean', default: false, describe: 'Allow only the roles a namespace lists in its allowed-roles annotation' })
    .option('namespace-restriction-format', { type: 'string', default: 'glob', describe: 'Allow-list patterns: glob (* wildcard) or regexp (whole-ARN match)' })
    .option('namespace-key', { type: 'string', default: 'iam.amazonaws.com/allowed-roles', describe: 'Namespace annotation holding the JSON array of allowed roles' })
    .option('backoff-max-elapsed-time', { type: 'string', default: '2s', describe: 'How long a request from an IP with no known pod waits for the pod to appear' })
    .option('backoff-max-interval', { type: 'string', default: '1s', describe: 'Kept for kube2iam compatibility: waiting is woken by watch events, not by polling' })
    .option('resolve-duplicate-cache-ips', { type: 'boolean', default: false, describe: 'Settle an IP claimed by several live pods with a live API lookup' })
    .option('cache-resync-period', { type: 'string', default: '30m', describe: 'Kept for kube2iam compatibility: the watch re-lists on its own when needed' })
    .version('version', 'Print the version and exit', `Version: ${VERSION}`)
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

  const appPort = Number(args.appPort);
  if (!/^\d+$/.test(String(args.appPort)) || appPort < 1 || appPort > 65535) {
    throw new ConfigError(`--app-port must be a port number (1-65535), got ${JSON.stringify(args.appPort)}`);
  }
  const level = String(args.logLevel).toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ConfigError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(args.logLevel)}`);
  }
  const logLevel = level === 'warning' ? 'warn' : level === 'panic' ? 'fatal' : (level as Config['logLevel']);
  // kube2iam: "json" (any case) selects JSON; anything else is text.
  const logFormat = String(args.logFormat).toLowerCase() === 'json' ? 'json' : 'text';
  return { config: { appPort, logLevel, logFormat, credentials: credentialConfig(args), pods: podConfig(args) } };
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
  return {
    node: text(args.node),
    connection,
    podsFile,
    restrictions: { enabled: args.namespaceRestrictions === true, format, key: String(args.namespaceKey) },
    waitMs: duration(args.backoffMaxElapsedTime, '--backoff-max-elapsed-time'),
    resolveDuplicates: args.resolveDuplicateCacheIps === true,
  };
}

function credentialConfig(args: Record<string, unknown>): CredentialConfig {
  let baseRoleArn: string | null = null;
  if (String(args.baseRoleArn) !== '') {
    try {
      baseRoleArn = normalizeBaseRoleArn(String(args.baseRoleArn));
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  }
  let defaultRoleArn: string | null = null;
  if (String(args.defaultRole) !== '') {
    const resolved = resolveRoleName(String(args.defaultRole), baseRoleArn);
    if (resolved.kind !== 'role') throw new ConfigError(`--default-role: ${resolved.reason}`);
    defaultRoleArn = resolved.arn;
  }
  const sessionTtlMs = duration(args.iamRoleSessionTtl, '--iam-role-session-ttl');
  if (sessionTtlMs < MIN_SESSION_TTL_MS || sessionTtlMs > MAX_SESSION_TTL_MS) {
    throw new ConfigError(`--iam-role-session-ttl must be between ${formatDuration(MIN_SESSION_TTL_MS)} and ${formatDuration(MAX_SESSION_TTL_MS)} (STS DurationSeconds 900..43200), got ${String(args.iamRoleSessionTtl)}`);
  }
  const stsRatePerSecond = Number(args.stsRateLimit);
  if (!Number.isFinite(stsRatePerSecond) || stsRatePerSecond <= 0) throw new ConfigError(`--sts-rate-limit must be a positive number, got ${String(args.stsRateLimit)}`);
  for (const [flag, value] of [['--iam-role-key', args.iamRoleKey], ['--iam-external-id', args.iamExternalId]] as const) {
    if (String(value).trim() === '') throw new ConfigError(`${flag} must not be empty`);
  }
  return {
    rolePolicy: { baseRoleArn, defaultRoleArn },
    roleKey: String(args.iamRoleKey),
    externalIdKey: String(args.iamExternalId),
    sessionTtlMs,
    errorTtlMs: duration(args.iamRoleErrorTtl, '--iam-role-error-ttl'),
    stsRatePerSecond,
  };
}

function duration(value: unknown, flag: string): number {
  const ms = parseDuration(String(value));
  if (ms === null) throw new ConfigError(`${flag} must be a duration such as 500ms, 2s or 15m, got ${JSON.stringify(value)}`);
  return ms;
}
