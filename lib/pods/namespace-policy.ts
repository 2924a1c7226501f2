// Namespace allow-lists (`iam.amazonaws.com/allowed-roles`): parsed once per namespace
// event into matchers, so a request only runs the compiled check. Pure.

import { isFullArn } from '../credentials/roles.js';

export type RestrictionFormat = 'glob' | 'regexp';

export interface NamespacePolicy {
  /** null: no usable allow-list, every role is denied. */
  readonly matchers: readonly RegExp[] | null;
  /** Why the annotation could not be used, for one log line per namespace event. */
  readonly problem: string | null;
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * Compiles a namespace's allow-list annotation. Patterns match the whole role ARN:
 * globs have `*` as their only wildcard (it matches "/" too, as in kube2iam); regexps are
 * anchored at both ends (kube2iam leaves the end open, #341). A pattern without `arn:`
 * gets the base ARN prefix, matched literally.
 */
export function compileNamespacePolicy(annotation: string | undefined, format: RestrictionFormat, baseRoleArn: string | null): NamespacePolicy {
  if (annotation === undefined || annotation.trim() === '') return { matchers: null, problem: null };
  let patterns: unknown;
  try {
    patterns = JSON.parse(annotation);
  } catch {
    return { matchers: null, problem: 'allowed-roles annotation is not valid JSON' };
  }
  if (!Array.isArray(patterns) || !patterns.every((p) => typeof p === 'string')) {
    return { matchers: null, problem: 'allowed-roles annotation is not a JSON array of strings' };
  }
  const matchers: RegExp[] = [];
  for (const pattern of patterns as string[]) {
    const prefix = isFullArn(pattern) || baseRoleArn === null ? '' : escape(baseRoleArn);
    const body = format === 'glob' ? pattern.split('*').map(escape).join('.*') : pattern;
    try {
      matchers.push(new RegExp(`^${prefix}(?:${body})$`));
    } catch {
      return { matchers: null, problem: `allowed-roles pattern ${JSON.stringify(pattern)} is not a valid regular expression` };
    }
  }
  return { matchers, problem: null };
}

export function roleAllowed(policy: NamespacePolicy | undefined, roleArn: string): boolean {
  if (policy?.matchers == null) return false;
  for (const matcher of policy.matchers) if (matcher.test(roleArn)) return true;
  return false;
}
