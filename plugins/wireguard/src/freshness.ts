/** Seconds on this agent's monotonic clock: no wall-clock step moves it. */
const monotonicSeconds = () => performance.now() / 1000;

/**
 * When each value last changed, as this agent saw it, on the monotonic clock. Used for what other nodes publish
 * about their own liveness (a heartbeat) and for what the kernel reports in wall-clock time (a handshake): only a
 * change counts as a sign of life, whatever the value says, and a wall-clock step ages nothing.
 */
export class ChangeClock {
  private readonly seen = new Map<string, { value: string; at: number }>();

  constructor(private readonly clock: () => number = monotonicSeconds) {}

  /**
   * Notes `key`'s current value and returns the seconds since it last changed. At first sight there is no history:
   * `firstAge` says how old the value is taken to be (`Infinity`: not believed until it changes).
   */
  observe(key: string, value: string, firstAge: number): number {
    const now = this.clock();
    const s = this.seen.get(key);
    if (!s) {
      this.seen.set(key, { value, at: now - firstAge });
      return firstAge;
    }
    if (s.value !== value) {
      s.value = value;
      s.at = now;
    }
    return now - s.at;
  }

  /** Forgets every key not in `keep` (nodes that left, peers removed). */
  retain(keep: ReadonlySet<string>): void {
    for (const key of this.seen.keys()) if (!keep.has(key)) this.seen.delete(key);
  }
}
