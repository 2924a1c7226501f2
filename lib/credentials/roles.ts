// Role resolution: from a pod's annotation (or the default role) to the role ARN the
// proxy assumes, and back to the name the role listing shows. Pure functions.

/** kube2iam's check for --base-role-arn (iam/arn.go), kept so the same values are accepted. */
const BASE_ARN = /^arn:(\w|-)*:iam::\d+:role\/?(\w+|-|\/|\.)*$/;
/** A full role ARN in any partition: arn:aws, arn:aws-cn, arn:aws-us-gov, ... */
const ROLE_ARN = /^arn:aws[\w-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/;
/** A bare role name, optionally with a path ("team/app"). */
const ROLE_NAME = /^[\w+=,.@-]+(\/[\w+=,.@-]+)*$/;

export interface RolePolicy {
  /** Ends with "/" (see normalizeBaseRoleArn); null when not configured. */
  baseRoleArn: string | null;
  /** Full ARN of --default-role; null when not configured. */
  defaultRoleArn: string | null;
}

/** Validates --base-role-arn and adds the trailing "/". Throws with a one-line reason. */
export function normalizeBaseRoleArn(value: string): string {
  if (!BASE_ARN.test(value)) throw new RangeError(`--base-role-arn ${JSON.stringify(value)} is not a role ARN prefix such as arn:aws:iam::123456789012:role/`);
  return value.endsWith('/') ? value : `${value}/`;
}

export function isFullArn(value: string): boolean {
  return value.toLowerCase().startsWith('arn:');
}

/** IAM's limits: a role ARN, a role name, and a path (with its slashes). */
const MAX_ROLE_ARN = 2048;
const MAX_ROLE_NAME = 64;
const MAX_ROLE_PATH = 512;

/**
 * Why a role (the part after `role/`, or a bare annotation) is longer than IAM allows, or
 * null. Checked before any pattern runs, so what a pod writes costs at most this much.
 */
function tooLong(resource: string): string | null {
  const slash = resource.lastIndexOf('/');
  const name = resource.length - slash - 1;
  const path = slash + 2; // the leading and trailing "/" IAM counts
  if (name > MAX_ROLE_NAME) return `a role name of ${name} characters is longer than IAM allows (${MAX_ROLE_NAME})`;
  if (slash !== -1 && path > MAX_ROLE_PATH) return `a role path of ${path} characters is longer than IAM allows (${MAX_ROLE_PATH})`;
  return null;
}

export type RoleResolution = { kind: 'role'; arn: string } | { kind: 'none'; reason: string } | { kind: 'invalid'; reason: string };

/** A role name or ARN, as written in an annotation, flag or allow-list, to a full ARN. */
export function resolveRoleName(value: string, baseRoleArn: string | null): RoleResolution {
  if (value.length > MAX_ROLE_ARN)
    return { kind: 'invalid', reason: `a role of ${value.length} characters is longer than IAM allows (${MAX_ROLE_ARN} for an ARN)` };
  if (isFullArn(value)) {
    const long = tooLong(value.slice(value.indexOf(':role/') + ':role/'.length));
    if (long !== null) return { kind: 'invalid', reason: long };
    return ROLE_ARN.test(value) ? { kind: 'role', arn: value } : { kind: 'invalid', reason: `${JSON.stringify(value)} is not a valid role ARN` };
  }
  const name = value.startsWith('/') ? value.slice(1) : value;
  const long = tooLong(name);
  if (long !== null) return { kind: 'invalid', reason: long };
  if (!ROLE_NAME.test(name)) return { kind: 'invalid', reason: `${JSON.stringify(value)} is not a valid role name` };
  if (baseRoleArn !== null && baseRoleArn.length + name.length > MAX_ROLE_ARN)
    return { kind: 'invalid', reason: `role ARN of ${baseRoleArn.length + name.length} characters is longer than IAM allows (${MAX_ROLE_ARN})` };
  if (baseRoleArn === null) return { kind: 'invalid', reason: `role ${JSON.stringify(value)} is not a full ARN and --base-role-arn is not set` };
  return { kind: 'role', arn: baseRoleArn + name };
}

/**
 * The role of a pod from its annotation value (undefined when the pod has none).
 * Unlike kube2iam, an empty value means "no role" rather than the bare base ARN.
 */
export function resolvePodRole(annotation: string | undefined, policy: RolePolicy): RoleResolution {
  if (annotation === undefined) {
    return policy.defaultRoleArn === null ? { kind: 'none', reason: 'no role annotation and no default role' } : { kind: 'role', arn: policy.defaultRoleArn };
  }
  const value = annotation.trim();
  if (value === '') return { kind: 'none', reason: 'empty role annotation' };
  return resolveRoleName(value, policy.baseRoleArn);
}

/** What the role listing shows: the ARN without the base prefix, or the full ARN of another account. */
export function roleListingName(arn: string, baseRoleArn: string | null): string {
  return baseRoleArn !== null && arn.startsWith(baseRoleArn) ? arn.slice(baseRoleArn.length) : arn;
}

/**
 * --auto-discover-base-arn: the base ARN from the instance profile's ARN, as kube2iam
 * derives it (arn:aws:iam::1:instance-profile/path/name → arn:aws:iam::1:role/).
 */
export function baseArnFromInstanceProfile(profileArn: string): string {
  const roleArn = profileArn.replace('instance-profile', 'role');
  const slash = roleArn.indexOf('/');
  if (slash === -1 || !profileArn.includes(':instance-profile/'))
    throw new RangeError(`cannot derive a base role ARN from instance profile ${JSON.stringify(profileArn)}`);
  return normalizeBaseRoleArn(roleArn.slice(0, slash + 1));
}
