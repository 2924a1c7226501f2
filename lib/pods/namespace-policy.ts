// Namespace allow-lists (`iam.amazonaws.com/allowed-roles`): parsed once per namespace
// event into matchers, so a request only runs the compiled check. Pure.
//
// Both sides are untrusted (a pod writes its role, a namespace its patterns) and a match
// runs on the event loop every pod shares, so its cost is bounded by construction: the
// annotation's size and pattern count are capped, globs are matched without
// backtracking, and regexps run on V8's linear-time engine, which accepts the subset of
// syntax RE2 (kube2iam's Go regexp) can run in linear time and refuses the rest.

import { setFlagsFromString } from 'node:v8';
import { isFullArn } from '../credentials/roles.js';

export type RestrictionFormat = 'glob' | 'regexp';

/** Whether a role ARN is allowed by one pattern. */
export type RoleMatcher = (roleArn: string) => boolean;

export interface NamespacePolicy {
  /** null: no usable allow-list, every role is denied. */
  readonly matchers: readonly RoleMatcher[] | null;
  /** Why the annotation could not be used, for one log line per namespace event. */
  readonly problem: string | null;
  /** Characters of regexp the matchers run (0 for globs): with the role's length, what a match costs. */
  readonly regexpSize?: number;
}

/**
 * The linear engine's work grows with the regexp's size times the role's length: a
 * match whose product is above this is refused, not run. Measured (benchmarks, policy
 * cost): the costliest regexps IAM-sized roles can meet stay under 1 ms of the event
 * loop at this product; everyday allow-lists (a few full ARNs and wildcards against a
 * role of under 100 characters) are far below it.
 */
export const MAX_REGEXP_WORK = 240_000;

/** The annotation's size and pattern count: what one evaluation can cost grows with both. */
export const MAX_ALLOW_LIST_BYTES = 16 * 1024;
export const MAX_ALLOW_LIST_PATTERNS = 256;

// The `l` flag needs this engine; set before any allow-list is compiled. Should the flag
// not take, every regexp allow-list is refused (denying all) rather than run backtracking.
setFlagsFromString('--enable-experimental-regexp-engine');

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * Pure, linear in the text: whether `text` matches the glob split at its `*`s (each `*`
 * matches anything, "/" included, as in kube2iam). Leftmost-first placement of each
 * literal part is enough for a glob whose only wildcard is `*`, so nothing backtracks.
 */
export function globMatches(parts: readonly string[], text: string): boolean {
  const first = parts[0] as string;
  if (parts.length === 1) return text === first;
  const last = parts[parts.length - 1] as string;
  const end = text.length - last.length;
  if (end < first.length || !text.startsWith(first) || !text.endsWith(last)) return false;
  let at = first.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i] as string;
    const found = text.indexOf(part, at);
    if (found === -1 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}

/**
 * Go's leading inline flags that JavaScript writes as regexp flags. Not `i`: the linear
 * engine has no case-insensitive mode, so `(?i)` is refused as invalid.
 */
const GO_FLAGS = /^\(\?([ms]+)\)/;

/** Lookaround and backreferences: RE2 has neither, though V8's linear engine runs some lookbehinds. */
const NOT_RE2 = /\(\?<?[=!]|\\[1-9]|\\k</;

function regexpMatcher(prefix: string, pattern: string): RoleMatcher {
  if (NOT_RE2.test(pattern)) throw new SyntaxError('not RE2 syntax');
  const flags = GO_FLAGS.exec(pattern);
  const body = flags === null ? pattern : pattern.slice(flags[0].length);
  const regexp = new RegExp(`^${escapeRegExp(prefix)}(?:${body})$`, `l${flags?.[1] ?? ''}`);
  return (arn) => regexp.test(arn);
}

/**
 * Compiles a namespace's allow-list annotation. Patterns match the whole role ARN:
 * globs have `*` as their only wildcard (it matches "/" too, as in kube2iam); regexps are
 * anchored at both ends (kube2iam leaves the end open, #341). A pattern without `arn:`
 * gets the base ARN prefix, matched literally.
 */
export function compileNamespacePolicy(annotation: string | undefined, format: RestrictionFormat, baseRoleArn: string | null): NamespacePolicy {
  if (annotation === undefined || annotation.trim() === '') return { matchers: null, problem: null };
  if (annotation.length > MAX_ALLOW_LIST_BYTES)
    return { matchers: null, problem: `allowed-roles annotation is ${annotation.length} characters, more than ${MAX_ALLOW_LIST_BYTES}` };
  let patterns: unknown;
  try {
    patterns = JSON.parse(annotation);
  } catch {
    return { matchers: null, problem: 'allowed-roles annotation is not valid JSON' };
  }
  if (!Array.isArray(patterns) || !patterns.every((p) => typeof p === 'string')) {
    return { matchers: null, problem: 'allowed-roles annotation is not a JSON array of strings' };
  }
  if (patterns.length > MAX_ALLOW_LIST_PATTERNS)
    return { matchers: null, problem: `allowed-roles annotation has ${patterns.length} patterns, more than ${MAX_ALLOW_LIST_PATTERNS}` };
  const matchers: RoleMatcher[] = [];
  let regexpSize = 0;
  for (const pattern of patterns as string[]) {
    const prefix = isFullArn(pattern) || baseRoleArn === null ? '' : baseRoleArn;
    if (format === 'regexp') regexpSize += prefix.length + pattern.length;
    if (format === 'glob') {
      const parts = (prefix + pattern).split('*');
      matchers.push((arn) => globMatches(parts, arn));
      continue;
    }
    try {
      matchers.push(regexpMatcher(prefix, pattern));
    } catch {
      return {
        matchers: null,
        problem: `allowed-roles pattern ${JSON.stringify(pattern.slice(0, 200))} is not a valid regular expression that runs in linear time (RE2 syntax: no backreferences or lookaround)`,
      };
    }
  }
  return { matchers, problem: null, regexpSize };
}

/** Whether matching this role against the allow-list would cost more than the event loop may spend on it. */
export function tooCostly(policy: NamespacePolicy | undefined, roleArn: string): boolean {
  return (policy?.regexpSize ?? 0) * roleArn.length > MAX_REGEXP_WORK;
}

export function roleAllowed(policy: NamespacePolicy | undefined, roleArn: string): boolean {
  if (policy?.matchers == null) return false;
  for (const matcher of policy.matchers) if (matcher(roleArn)) return true;
  return false;
}
