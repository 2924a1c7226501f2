// The proxy's own IMDSv2 token from the node's metadata service: what a pass-through
// request that carried a valid pod token goes upstream with (a pod's token is this
// proxy's, never the node's), and what start-up discovery reads with. One token for the
// node, fetched when first needed and renewed an hour before it expires; a metadata
// service that gives none (IMDSv1 only) is asked again only after a pause.

export type TokenFetch = () => Promise<{ status: number; body: string }>;

/** As long as IMDS allows; renewed this long before the end. */
export const NODE_TOKEN_TTL_SECONDS = 21_600;
const RENEW_BEFORE_MS = 60 * 60_000;
const RETRY_AFTER_FAILURE_MS = 5_000;

export class NodeToken {
  private value: string | null = null;
  private expiresAt = 0;
  private renewAt = 0;
  private pending: Promise<string | null> | null = null;

  constructor(private readonly fetch: TokenFetch) {}

  /** The token, or null when the metadata service gives none now. */
  get(now: number): Promise<string | null> {
    if (now >= this.renewAt && this.pending === null) this.pending = this.renew();
    // While a renewal is under way, the token it replaces still works.
    if (this.value !== null && now < this.expiresAt) return Promise.resolve(this.value);
    return this.pending ?? Promise.resolve(this.value);
  }

  private async renew(): Promise<string | null> {
    const started = Date.now();
    try {
      const answer = await this.fetch();
      if (answer.status !== 200 || answer.body === '') throw new Error(`token PUT answered ${answer.status}`);
      this.value = answer.body;
      this.expiresAt = started + NODE_TOKEN_TTL_SECONDS * 1000;
      this.renewAt = this.expiresAt - RENEW_BEFORE_MS;
    } catch {
      if (started >= this.expiresAt) this.value = null;
      this.renewAt = started + RETRY_AFTER_FAILURE_MS;
    } finally {
      this.pending = null;
    }
    return this.value;
  }
}
