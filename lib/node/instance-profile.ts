// --auto-discover-base-arn and --auto-discover-default-role: the node's own instance
// profile, read once at start from the metadata service, as kube2iam reads it.

import { baseArnFromInstanceProfile, resolveRoleName, type RolePolicy } from '../credentials/roles.js';
import type { MetadataUpstream } from '../upstream/metadata.js';

export async function discoverRolePolicy(policy: RolePolicy, discover: { baseArn: boolean; defaultRole: boolean }, upstream: MetadataUpstream): Promise<RolePolicy> {
  if (!discover.baseArn && !discover.defaultRole) return policy;
  // An IMDSv2 token when the service gives one: nodes with HttpTokens=required refuse
  // plain GETs (kube2iam crash-looped there until it moved to an IMDSv2 client).
  const token = await upstream.fetch('PUT', '/latest/api/token', { 'x-aws-ec2-metadata-token-ttl-seconds': '60' }).catch(() => null);
  const headers: Record<string, string> = token?.status === 200 && token.body !== '' ? { 'x-aws-ec2-metadata-token': token.body } : {};
  const info = await upstream.fetch('GET', '/latest/meta-data/iam/info', headers);
  if (info.status !== 200) throw new Error(`auto-discovery: metadata iam/info answered ${info.status}`);
  let profileArn: unknown;
  try {
    profileArn = (JSON.parse(info.body) as { InstanceProfileArn?: unknown }).InstanceProfileArn;
  } catch {
    throw new Error('auto-discovery: metadata iam/info is not JSON');
  }
  if (typeof profileArn !== 'string') throw new Error('auto-discovery: metadata iam/info has no InstanceProfileArn');
  const baseRoleArn = baseArnFromInstanceProfile(profileArn);
  if (!discover.defaultRole) return { ...policy, baseRoleArn };
  const listing = await upstream.fetch('GET', '/latest/meta-data/iam/security-credentials/', headers);
  const name = listing.status === 200 ? listing.body.split('\n')[0]?.trim() ?? '' : '';
  if (name === '') throw new Error(`auto-discovery: the metadata service names no instance role (${listing.status})`);
  const resolved = resolveRoleName(name, baseRoleArn);
  if (resolved.kind !== 'role') throw new Error(`auto-discovery: ${resolved.reason}`);
  return { baseRoleArn, defaultRoleArn: resolved.arn };
}
