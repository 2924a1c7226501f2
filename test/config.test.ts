import t from 'tap';
import { ConfigError, FLAGS, parseArgs, type Config } from '../lib/config.js';
import { formatDuration, parseDuration } from '../lib/duration.js';

async function config(args: string[]): Promise<Config> {
  const parsed = await parseArgs(args);
  if (parsed.config === undefined) throw new Error('no config');
  return parsed.config;
}

t.test('Go durations', async (t) => {
  const table: Array<[string, number | null]> = [
    ['500ms', 500],
    ['2s', 2000],
    ['15m', 900_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
    ['0', 0],
    ['0s', 0],
    ['250us', 0],
    ['', null],
    ['15', null],
    ['m', null],
    ['-1s', null],
    ['1d', null],
    ['1s ', 1000],
    ['s1', null],
  ];
  for (const [text, ms] of table) t.equal(parseDuration(text), ms, JSON.stringify(text));
  t.equal(formatDuration(450_000), '450s');
  t.equal(formatDuration(900_000), '15m');
});

t.test('kube2iam defaults for credentials and pods', async (t) => {
  const c = await config([]);
  t.equal(c.appPort, 8181);
  t.same(c.credentials, {
    rolePolicy: { baseRoleArn: null, defaultRoleArn: null },
    roleKey: 'iam.amazonaws.com/role',
    externalIdKey: 'iam.amazonaws.com/external-id',
    sessionTtlMs: 900_000,
    errorTtlMs: 0,
    stsRatePerSecond: 20,
    prefetchWindowMs: 60_000,
    handoverFile: null,
  });
  t.same(c.pods, {
    node: null,
    connection: { kubeconfig: null, apiServer: null, apiToken: null, insecure: false },
    podsFile: null,
    restrictions: { enabled: false, format: 'glob', key: 'iam.amazonaws.com/allowed-roles' },
    serviceAccountRoles: 'off',
    serviceAccountRoleKey: 'eks.amazonaws.com/role-arn',
    waitMs: 2000,
    resolveDuplicates: false,
  });
});

t.test('kube2iam defaults for serving and the node', async (t) => {
  const c = await config([]);
  t.same(c.serve, { metadataAddr: '169.254.169.254', imdsv2Required: false, allowRoute: null, hostIp: '', debug: false, statsIntervalMs: 60_000 });
  t.equal(c.iptables, null);
  t.same(c.autoDiscover, { baseArn: false, defaultRole: false, defaultRoleName: null });
  t.equal(c.logLevel, 'info');
  t.equal(c.logFormat, 'text');
});

t.test('serving and node flags', async (t) => {
  const c = await config([
    '--metadata-addr',
    '127.0.0.1:1338',
    '--imdsv2-required',
    '--allow-route-regexp',
    '^/latest/(api/token|meta-data/placement/)',
    '--host-ip',
    '10.0.0.5',
    '--iptables',
    '--host-interface',
    'cali+',
    '--iptables-remove-on-exit',
    '--debug',
    '--stats-interval',
    '0',
    '--verbose',
    '--metrics-port',
    '9620',
  ]);
  t.equal(c.serve.metadataAddr, '127.0.0.1:1338');
  t.equal(c.serve.imdsv2Required, true);
  t.ok(c.serve.allowRoute?.test('/latest/meta-data/placement/region'));
  t.equal(c.serve.hostIp, '10.0.0.5');
  t.equal(c.serve.debug, true);
  t.equal(c.serve.statsIntervalMs, 0);
  t.same(c.iptables, { hostInterface: 'cali+', hostIp: '10.0.0.5', removeOnExit: true });
  t.equal(c.logLevel, 'debug', '--verbose overrides --log-level');
  t.same((await config(['--auto-discover-default-role'])).autoDiscover, { baseArn: false, defaultRole: true, defaultRoleName: null });
  for (const addr of ['[fd00:ec2::254]', '169.254.169.254:80', 'metadata.internal:8080', '[::1]:1338'])
    t.equal((await config(['--metadata-addr', addr])).serve.metadataAddr, addr);
});

t.test('every flag falls back to its KUBE2IAM_ environment variable; the command line wins', async (t) => {
  const env = {
    KUBE2IAM_APP_PORT: '9000',
    KUBE2IAM_HOST_IP: '10.0.0.7',
    KUBE2IAM_IPTABLES: 'true',
    KUBE2IAM_DEBUG: '1',
    KUBE2IAM_SERVICE_HOST: '10.96.0.9',
    KUBE2IAM_PORT: 'tcp://10.96.0.9:8181',
  };
  const parsed = await parseArgs(['--app-port', '9001'], env);
  t.equal(parsed.config?.appPort, 9001);
  t.equal(parsed.config?.serve.hostIp, '10.0.0.7');
  t.equal(parsed.config?.iptables?.hostIp, '10.0.0.7');
  t.equal(parsed.config?.serve.debug, true);
  t.equal((await parseArgs([], env)).config?.appPort, 9000);
  const error: unknown = await parseArgs([], { KUBE2IAM_DEBUG: 'yes please' }).then(
    () => null,
    (e: unknown) => e,
  );
  t.match((error as Error).message, /KUBE2IAM_DEBUG must be true or false/);
});

t.test('pod flags', async (t) => {
  const c = await config([
    '--node',
    'ip-10-0-0-1',
    '--api-server',
    'https://10.96.0.1',
    '--api-token',
    'tok',
    '--insecure',
    '--namespace-restrictions',
    '--namespace-restriction-format',
    'RegExp',
    '--namespace-key',
    'example.com/roles',
    '--backoff-max-elapsed-time',
    '500ms',
    '--backoff-max-interval',
    '1s',
    '--resolve-duplicate-cache-ips',
    '--cache-resync-period',
    '10m',
    '--service-account-roles',
    'Override',
    '--service-account-role-key',
    'example.com/sa-role',
  ]);
  t.same(c.pods, {
    node: 'ip-10-0-0-1',
    connection: { kubeconfig: null, apiServer: 'https://10.96.0.1', apiToken: 'tok', insecure: true },
    podsFile: null,
    restrictions: { enabled: true, format: 'regexp', key: 'example.com/roles' },
    serviceAccountRoles: 'override',
    serviceAccountRoleKey: 'example.com/sa-role',
    waitMs: 500,
    resolveDuplicates: true,
  });
  t.equal((await config(['--pods-file', 'pods.yaml'])).pods.podsFile, 'pods.yaml');
});

t.test('the container-credentials endpoint is off unless asked for, then on port 80 for audience kube2iam, on its own link', async (t) => {
  t.equal((await config([])).containerCredentials, null);
  t.same((await config(['--container-credentials', '--node', 'n1'])).containerCredentials, {
    audience: 'kube2iam',
    port: 80,
    link: 'kube2iam0',
    addresses: null,
    removeOnExit: false,
  });
  const flags = [
    '--container-credentials-audience',
    'sts.example',
    '--container-credentials-port',
    '8182',
    '--container-credentials-link=',
    '--container-credentials-addresses',
    '169.254.170.23, fd00:ec2::23',
  ];
  t.same(
    (await config(['--container-credentials', '--node', 'n1', ...flags])).containerCredentials,
    { audience: 'sts.example', port: 8182, link: null, addresses: ['169.254.170.23', 'fd00:ec2::23'], removeOnExit: false },
    'an empty link: the node has the addresses',
  );
});

t.test('credential flags resolve and validate at start', async (t) => {
  const c = await config([
    '--base-role-arn',
    'arn:aws:iam::123456789012:role',
    '--default-role',
    'fallback',
    '--iam-role-key',
    'example.com/role',
    '--iam-external-id=example.com/xid',
    '--iam-role-session-ttl',
    '30m',
    '--iam-role-error-ttl',
    '10s',
    '--sts-rate-limit',
    '5',
    '--use-regional-sts-endpoint',
  ]);
  t.same(c.credentials.rolePolicy, { baseRoleArn: 'arn:aws:iam::123456789012:role/', defaultRoleArn: 'arn:aws:iam::123456789012:role/fallback' });
  t.equal(c.credentials.roleKey, 'example.com/role');
  t.equal(c.credentials.externalIdKey, 'example.com/xid');
  t.equal(c.credentials.sessionTtlMs, 1_800_000);
  t.equal(c.credentials.errorTtlMs, 10_000);
  t.equal(c.credentials.stsRatePerSecond, 5);
  t.equal((await config(['--handover-file', '/run/kube2iam/handover.json'])).credentials.handoverFile, '/run/kube2iam/handover.json');
  const full = await config(['--default-role', 'arn:aws:iam::999999999999:role/other']);
  t.equal(full.credentials.rolePolicy.defaultRoleArn, 'arn:aws:iam::999999999999:role/other', 'a full ARN needs no base');
});

for (const [args, pattern] of [
  [['--base-role-arn', 'arn:aws:s3:::bucket'], /--base-role-arn/],
  [['--default-role', 'fallback'], /--default-role: .*--base-role-arn is not set/],
  [['--iam-role-session-ttl', '5m'], /between 450s and 6h/],
  [['--iam-role-session-ttl', '7h'], /between 450s and 6h/],
  [['--iam-role-session-ttl', 'soon'], /must be a duration/],
  [['--iam-role-error-ttl', '10'], /--iam-role-error-ttl must be a duration/],
  [['--sts-rate-limit', '0'], /--sts-rate-limit must be a positive number/],
  [['--prefetch-window', 'soon'], /--prefetch-window must be a duration/],
  [['--handover-file', 'handover.json'], /--handover-file must be an absolute file path, got "handover.json"/],
  [['--handover-file', '/run/kube2iam/'], /--handover-file must be an absolute file path/],
  [['--iam-role-key', ' '], /--iam-role-key must not be empty/],
  [['--namespace-restriction-format', 'fuzzy'], /glob or regexp/],
  [['--api-token', 'x'], /--api-server and --api-token go together/],
  [['--pods-file', 'p.yaml', '--kubeconfig', 'k'], /--pods-file replaces the API server/],
  [['--container-credentials', '--pods-file', 'p.yaml'], /--container-credentials needs the API server to review tokens: drop --pods-file/],
  [['--container-credentials'], /--container-credentials needs --node: a token is served only for a pod of this node/],
  [['--container-credentials', '--node', 'n1', '--container-credentials-audience', ' '], /--container-credentials-audience must not be empty/],
  [['--container-credentials-port', '0'], /--container-credentials-port must be a port number/],
  [
    ['--container-credentials', '--node', 'n1', '--container-credentials-addresses', '169.254.170.23,pod-identity'],
    /--container-credentials-addresses must list IP addresses, got "pod-identity"/,
  ],
  [['--container-credentials', '--node', 'n1', '--container-credentials-link', 'a/b'], /--container-credentials-link must be an interface name/],
  [['--service-account-roles', 'first'], /--service-account-roles must be off, fallback or override/],
  [['--service-account-role-key', ''], /--service-account-role-key must not be empty/],
  [['--backoff-max-elapsed-time', 'long'], /--backoff-max-elapsed-time must be a duration/],
  [['--cache-resync-period', '30'], /--cache-resync-period must be a duration/],
  [['--iptables'], /--iptables needs --host-ip/],
  [['--iptables', '--host-ip', 'node-1'], /--iptables: host IP "node-1" is not an IPv4 address/],
  [['--iptables', '--host-ip', '10.0.0.1', '--host-interface', 'a b'], /--iptables: host interface "a b"/],
  [['--iptables', '--host-ip', '10.0.0.1', '--metadata-addr', 'metadata.internal'], /--iptables: metadata address/],
  [['--metadata-addr', 'http://169.254.169.254'], /--metadata-addr must be host or host:port/],
  [['--metadata-addr', '169.254.169.254/latest'], /--metadata-addr must be host or host:port/],
  [['--metadata-addr', ''], /--metadata-addr must be host or host:port/],
  [['--metadata-addr', '169.254.169.254:99999'], /--metadata-addr must be host or host:port/],
  [['--metadata-addr', 'user@169.254.169.254'], /--metadata-addr must be host or host:port/],
  [['--allow-route-regexp', '('], /--allow-route-regexp is not a valid regexp/],
  [['--imdsv2-required', '--allow-route-regexp', '^/latest/meta-data/'], /--imdsv2-required needs the token path/],
  [['--stats-interval', 'often'], /--stats-interval must be a duration/],
  [['--metrics-port', 'none'], /--metrics-port must be a port number/],
  [['--auto-discover-base-arn', '--base-role-arn', 'arn:aws:iam::1:role/'], /exclude each other/],
  [['--auto-discover-default-role', '--default-role', 'arn:aws:iam::123456789012:role/x'], /exclude each other/],
] as const) {
  t.test(`refused: ${args.join(' ')}`, async (t) => {
    const error: unknown = await parseArgs([...args]).then(
      () => null,
      (e: unknown) => e,
    );
    t.ok(error instanceof ConfigError, 'a ConfigError (one line, exit 2)');
    t.match((error as Error).message, pattern);
  });
}

t.test('a kube2iam DaemonSet’s arguments parse unchanged', async (t) => {
  // The shapes kube2iam's README and Helm chart use: --flag=value, booleans as =true/=false.
  const c = await config([
    '--app-port=8181',
    '--base-role-arn=arn:aws:iam::123456789012:role/',
    '--default-role=kube2iam-default',
    '--iptables=true',
    '--host-ip=10.0.1.23',
    '--host-interface=cali+',
    '--node=ip-10-0-1-23.ec2.internal',
    '--namespace-restrictions=false',
    '--auto-discover-base-arn=false',
    '--verbose=false',
    '--log-format=json',
    '--log-level=info',
    '--iam-role-session-ttl=15m',
    '--backoff-max-elapsed-time=2s',
    '--metrics-port=9620',
    '--use-regional-sts-endpoint=true',
    '--debug=false',
  ]);
  t.equal(c.appPort, 8181);
  t.same(c.iptables, { hostInterface: 'cali+', hostIp: '10.0.1.23', removeOnExit: false });
  t.equal(c.pods.node, 'ip-10-0-1-23.ec2.internal');
  t.equal(c.pods.restrictions.enabled, false);
  t.equal(c.autoDiscover.baseArn, false);
  t.equal(c.logLevel, 'info');
  t.equal(c.logFormat, 'json');
  t.equal(c.serve.debug, false);
  t.equal(c.credentials.rolePolicy.defaultRoleArn, 'arn:aws:iam::123456789012:role/kube2iam-default');
});

t.test('booleans take Go’s spellings, as kube2iam’s flags do; anything else is refused', async (t) => {
  for (const on of ['', '=true', '=True', '=TRUE', '=t', '=T', '=1']) {
    t.not((await config([`--iptables${on}`, '--host-ip', '10.0.0.1'])).iptables, null, `--iptables${on}`);
    t.equal((await config([`--namespace-restrictions${on}`])).pods.restrictions.enabled, true, `--namespace-restrictions${on}`);
  }
  for (const off of ['=false', '=False', '=FALSE', '=f', '=F', '=0']) t.equal((await config([`--debug${off}`])).serve.debug, false, `--debug${off}`);
  for (const bad of ['=yes', '=on', '=2', '=tRuE']) {
    const error: unknown = await parseArgs([`--iptables${bad}`, '--host-ip', '10.0.0.1']).then(
      () => null,
      (e: unknown) => e,
    );
    t.match((error as Error).message, /--iptables must be true or false/, `--iptables${bad}`);
  }
});

const BOOLEANS = Object.entries(FLAGS)
  .filter(([, spec]) => spec.type === 'boolean')
  .map(([flag]) => flag);
const refusal = (args: string[]): Promise<unknown> =>
  parseArgs(args, {}).then(
    () => null,
    (e: unknown) => e,
  );

t.test('every boolean flag through the spellings kube2iam’s pflag accepts and refuses: nothing fails open', async (t) => {
  t.equal(BOOLEANS.length, 12, `${BOOLEANS.length} boolean flags`);
  for (const flag of BOOLEANS) {
    const camel = flag.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
    for (const accepted of [`--${flag}`, `--${flag}=true`, `--${flag}=1`, `--${flag}=False`, `--${flag}=0`]) {
      // The flags each needs beside it when on.
      const needs: Record<string, string[]> = { iptables: ['--host-ip=10.0.0.1'], 'container-credentials': ['--node=n1'] };
      const error = await refusal([accepted, ...(needs[flag] ?? [])]);
      t.equal(error, null, `${accepted} accepted`);
    }
    const refused: Array<[string[], RegExp]> = [
      ...(camel === flag
        ? []
        : ([
            [[`--${camel}`], new RegExp(`^unknown flag --${camel} \\(kube2iam's flags are lower-case with dashes: --${flag}\\)$`)],
            [[`--${camel}=true`], /^unknown flag --\w+ /],
          ] as Array<[string[], RegExp]>)),
      [[`--${flag.toUpperCase()}`], /^unknown flag --[A-Z0-9-]+$/],
      [[`-${flag}`], new RegExp(`^unknown flag -${flag} \\(kube2iam's flags start with two dashes: --${flag}\\)$`)],
      [[`--${flag}`, 'false'], new RegExp(`^--${flag} false: a boolean takes its value after "=" \\(--${flag}=false\\); kube2iam reads`)],
      [[`--${flag}`, 'true'], /a boolean takes its value after "="/],
      [[`--${flag}=yes`], /must be true or false/],
    ];
    for (const [args, message] of refused) {
      const error = await refusal(args);
      t.ok(error instanceof ConfigError, `${args.join(' ')} refused (exit 2)`);
      t.match((error as Error | null)?.message ?? '', message, args.join(' '));
    }
  }
});

t.test('the camelCase spellings the review found fail closed, and so does any unknown flag', async (t) => {
  for (const args of [['--namespaceRestrictions'], ['--imdsv2Required'], ['--iptablesRemoveOnExit=true'], ['--no-such-flag'], ['--namespace_restrictions']]) {
    const error = await refusal(args);
    t.ok(error instanceof ConfigError, args.join(' '));
    t.match((error as Error).message, /^unknown flag /);
  }
});

t.test('a repeated flag takes its last value, as kube2iam’s pflag does', async (t) => {
  const c = await config(['--iptables', '--host-ip', '10.0.0.1', '--host-interface=cali+', '--host-interface=eni+', '--app-port', '1', '--app-port', '8181']);
  t.equal(c.iptables?.hostInterface, 'eni+');
  t.equal(c.appPort, 8181);
});

t.test('Service-link variables named like a flag are ignored; --help never prints an environment value', async (t) => {
  t.equal((await parseArgs([], { KUBE2IAM_APP_PORT: 'tcp://10.96.0.9:80', KUBE2IAM_METRICS_PORT: 'tcp://10.96.0.10:9620' })).config?.appPort, 8181);
  const help = (await parseArgs(['--help'], { KUBE2IAM_API_TOKEN: 'secret-token-value' })).output ?? '';
  t.notMatch(help, /secret-token-value/);
  t.match(help, /from KUBE2IAM_API_TOKEN/);
});
