/** Milliseconds on the monotonic clock: a wall-clock step moves no bucket. */
export type Clock = () => number;
const monotonic: Clock = () => performance.now();

/** A token bucket: `rate` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: Clock = monotonic,
  ) {
    this.tokens = burst;
    this.at = now();
  }

  /** Takes one token; false when there is none. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** True when the bucket is full again (its client has been quiet long enough to be forgotten). */
  full(): boolean {
    this.refill();
    return this.tokens >= this.burst;
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) / 1000) * this.rate);
    this.at = t;
  }
}

/** How many clients get a bucket of their own; beyond, new clients share one (and are never all forgotten). */
const MAX_CLIENTS = 4096;

/** Request-rate limits: one bucket per client address and one for all clients together. */
export interface RateLimits {
  /** Requests a second one client address may make. */
  readonly perClient: number;
  /** Requests one client may make at once after a quiet spell. */
  readonly burst: number;
  /** Requests a second from every client together. */
  readonly total: number;
}

/** Why a request was refused: its client's rate, or everyone's. */
export type RateVerdict = 'ok' | 'client' | 'total';

/**
 * Per-client and overall request rates. A client's bucket is forgotten once full again; at most 4096 clients have
 * their own, the rest share one, so a flood from many addresses costs bounded memory.
 */
export class RateLimiter {
  private readonly clients = new Map<string, TokenBucket>();
  private readonly overflow: TokenBucket;
  private readonly all: TokenBucket;
  private swept = -Infinity;

  constructor(
    readonly limits: RateLimits,
    private readonly now: Clock = monotonic,
  ) {
    this.overflow = new TokenBucket(limits.perClient, limits.burst, now);
    this.all = new TokenBucket(limits.total, Math.max(limits.total, limits.burst), now);
  }

  /** Counts one request of `client`; says whether it may be served. */
  admit(client: string): RateVerdict {
    let bucket = this.clients.get(client);
    if (!bucket) {
      if (this.clients.size >= MAX_CLIENTS && this.now() - this.swept >= 1000) this.forgetQuiet();
      if (this.clients.size < MAX_CLIENTS) {
        bucket = new TokenBucket(this.limits.perClient, this.limits.burst, this.now);
        this.clients.set(client, bucket);
      } else bucket = this.overflow;
    }
    if (!bucket.take()) return 'client';
    return this.all.take() ? 'ok' : 'total';
  }

  /** Clients with a bucket of their own (for tests). */
  get tracked(): number {
    return this.clients.size;
  }

  /** At most once a second: a flood from new addresses must not make every request walk the whole map. */
  private forgetQuiet(): void {
    this.swept = this.now();
    for (const [client, bucket] of this.clients) if (bucket.full()) this.clients.delete(client);
  }
}
