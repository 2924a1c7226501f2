import type { Config, ParseResult } from '../../lib/config.js';

/** The config flags parsed into; throws when they printed text instead (--help, --version). */
export function configOf(parsed: ParseResult): Config {
  if (parsed.config === undefined) throw new Error(`the flags gave no config: ${parsed.output ?? ''}`);
  return parsed.config;
}
