// Command-line flags, named and defaulted as kube2iam names them, and their validation.
// Later work adds the rest of kube2iam's flags here; a DaemonSet's arguments are checked
// against this same schema.

import yargs from 'yargs';

export interface Config {
  appPort: number;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  logFormat: 'text' | 'json';
}

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
  return { config: { appPort, logLevel, logFormat } };
}
