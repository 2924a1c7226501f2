// What the proxy reads of its own node from the metadata service at start, as kube2iam
// and the SDKs read it: the instance profile (--auto-discover-base-arn,
// --auto-discover-default-role) and, when AWS_REGION is not set, the region.

import { baseArnFromInstanceProfile, resolveRoleName, type RolePolicy } from '../credentials/roles.js';
import { TOKEN_HEADER, type MetadataUpstream, type UpstreamAnswer } from '../upstream/metadata.js';

type MetadataGet = (path: string) => Promise<UpstreamAnswer>;

/**
 * GETs from the node's metadata service with the node's IMDSv2 token when it gives one:
 * nodes with HttpTokens=required refuse plain GETs (kube2iam crash-looped there until it
 * moved to an IMDSv2 client).
 */
async function nodeMetadata(upstream: MetadataUpstream): Promise<MetadataGet> {
  const token = await upstream.token();
  const headers: Record<string, string> = token === null ? {} : { [TOKEN_HEADER]: token };
  return (path) => upstream.fetch('GET', path, headers);
}

/** The node's region (placement/region), where SDKs on EC2 find it when AWS_REGION is not set. */
export async function discoverRegion(upstream: MetadataUpstream): Promise<string> {
  const answer = await (await nodeMetadata(upstream))('/latest/meta-data/placement/region');
  const region = answer.body.trim();
  if (answer.status !== 200 || !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
    throw new Error(`metadata placement/region answered ${answer.status} ${JSON.stringify(region.slice(0, 40))}`);
  }
  return region;
}

export async function discoverRolePolicy(
  policy: RolePolicy,
  discover: { baseArn: boolean; defaultRole: boolean; defaultRoleName: string | null },
  upstream: MetadataUpstream,
): Promise<RolePolicy> {
  if (!discover.baseArn && !discover.defaultRole) return policy;
  const get = await nodeMetadata(upstream);
  const info = await get('/latest/meta-data/iam/info');
  if (info.status !== 200) throw new Error(`auto-discovery: metadata iam/info answered ${info.status}`);
  let profileArn: unknown;
  try {
    profileArn = (JSON.parse(info.body) as { InstanceProfileArn?: unknown }).InstanceProfileArn;
  } catch {
    throw new Error('auto-discovery: metadata iam/info is not JSON');
  }
  if (typeof profileArn !== 'string') throw new Error('auto-discovery: metadata iam/info has no InstanceProfileArn');
  const baseRoleArn = baseArnFromInstanceProfile(profileArn);
  if (!discover.defaultRole) {
    if (discover.defaultRoleName === null) return { ...policy, baseRoleArn };
    const resolved = resolveRoleName(discover.defaultRoleName, baseRoleArn);
    if (resolved.kind !== 'role') throw new Error(`--default-role: ${resolved.reason}`);
    return { baseRoleArn, defaultRoleArn: resolved.arn };
  }
  const listing = await get('/latest/meta-data/iam/security-credentials/');
  const name = listing.status === 200 ? (listing.body.split('\n')[0]?.trim() ?? '') : '';
  if (name === '') throw new Error(`auto-discovery: the metadata service names no instance role (${listing.status})`);
  const resolved = resolveRoleName(name, baseRoleArn);
  if (resolved.kind !== 'role') throw new Error(`auto-discovery: ${resolved.reason}`);
  return { baseRoleArn, defaultRoleArn: resolved.arn };
}
