import type { Config, ParseResult } from '../../lib/config.js';
import { freePort } from './ports.js';

/** The config flags parsed into; throws when they printed text instead (--help, --version). */
export function configOf(parsed: ParseResult): Config {
  if (parsed.config === undefined) throw new Error(`the flags gave no config: ${parsed.output ?? ''}`);
  return parsed.config;
}

/** Flags of a proxy under test: a free port, `podsFile`'s pods, `metadata` as the metadata service, no stats line; then `extra`. */
export async function podsFileFlags(podsFile: string, metadata: string, ...extra: string[]): Promise<string[]> {
  return ['--app-port', String(await freePort()), '--pods-file', podsFile, '--metadata-addr', metadata, '--stats-interval', '0', ...extra];
}
