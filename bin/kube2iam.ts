#!/usr/bin/env node
// Parses the flags and starts the app; stops it on SIGTERM or SIGINT.

import { hideBin } from 'yargs/helpers';
import { startApp, type App } from '../lib/app.js';
import { ConfigError, parseArgs } from '../lib/config.js';
import { createLogger, errorText, stderrSink } from '../lib/log.js';
import { VERSION } from '../lib/version.js';

const SHUTDOWN_GRACE_MS = 10_000;
/** After the grace, what is left to stop (the handover, the rule) gets this long; the DaemonSet allows 30 s in all. */
const SHUTDOWN_AFTER_GRACE_MS = 10_000;

async function main(): Promise<void> {
  let parsed: Awaited<ReturnType<typeof parseArgs>>;
  try {
    parsed = await parseArgs(hideBin(process.argv));
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`kube2iam: ${error.message.split('\n')[0]}\n`);
    process.exit(2);
  }
  if (parsed.output !== undefined || parsed.config === undefined) {
    process.stdout.write(`${parsed.output ?? ''}\n`);
    return;
  }
  const logSink = stderrSink();
  const log = createLogger(parsed.config, logSink);
  let app: App;
  try {
    app = await startApp(parsed.config, log, { logSink });
  } catch (error) {
    // One line in the log's own shape, as logrus's Fatal: the log pipeline keeps parsing.
    log.fatal({ version: VERSION }, `cannot start: ${errorText(error)}`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const forced = setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS + SHUTDOWN_AFTER_GRACE_MS);
    forced.unref();
    void app.close(SHUTDOWN_GRACE_MS).then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`kube2iam: ${errorText(error)}\n`);
  process.exit(1);
});
