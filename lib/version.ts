// Who this program is: the version from package.json, and the commit and build date the
// image records at build time (build-info.json beside package.json; "unknown" outside it).

import { readFileSync } from 'node:fs';

/** The package root: two levels up from dist/lib, one from lib when run from source. */
function readRootJson(name: string): Record<string, unknown> | null {
  for (const up of ['../../', '../']) {
    try {
      return JSON.parse(readFileSync(new URL(`${up}${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
    } catch {
      // not at this level
    }
  }
  return null;
}

const pkg = readRootJson('package.json');
const build = readRootJson('build-info.json');

const text = (value: unknown): string => (typeof value === 'string' && value !== '' ? value : 'unknown');

export const VERSION = text(pkg?.version);
export const COMMIT = text(build?.commit);
export const BUILD_DATE = text(build?.date);

/** What `--version` prints, in kube2iam's words. */
export const VERSION_LINE = `Version: ${VERSION} - Commit: ${COMMIT} - Date: ${BUILD_DATE}`;
