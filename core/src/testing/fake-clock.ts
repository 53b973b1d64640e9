import type { Clock, ClockTimer } from '../api/services.js';

interface Pending {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
}

/**
 * A clock a test moves by hand. Give it to `startTestAgent({ clock })`: the plugins' reconcile loops (debounce,
 * resync, retry backoff, `requeueAfter`, the run timeout) and their `clock` service then run on it, and nothing
 * happens on its timers until {@link advance} moves time past them.
 *
 * @example
 * const clock = new FakeClock();
 * const t = await startTestAgent({ plugins: [mine], clock, reconcile: { resync: '1h' } });
 * await t.waitForReconcile('mine');
 * await clock.advance(3_600_000); // an hour later: the resync runs
 */
export class FakeClock implements Clock {
  private wall: number;
  private mono = 0;
  private nextId = 1;
  private timers: Pending[] = [];

  /** @param startsAt the wall-clock time it shows at first, in ms since the epoch (default 2026-01-01T00:00:00Z) */
  constructor(startsAt = Date.UTC(2026, 0, 1)) {
    this.wall = startsAt;
  }

  now(): number {
    return this.wall;
  }

  monotonic(): number {
    return this.mono;
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    const id = this.nextId++;
    this.timers.push({ id, at: this.mono + Math.max(0, Number.isFinite(ms) ? ms : 0), callback });
    const timer: ClockTimer & { readonly id: number } = { id };
    return timer;
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    const id = (timer as { id?: unknown } | undefined)?.id;
    this.timers = this.timers.filter((t) => t.id !== id);
  }

  /** Timers set and not yet fired. */
  get pending(): number {
    return this.timers.length;
  }

  /**
   * Moves time on by `ms`, firing every timer that falls due on the way in time order (a timer set by one that fires
   * fires too when it falls due within `ms`), and letting the promises each one starts settle before the next:
   * a reconcile a timer starts runs as far as it can without the real clock.
   */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`FakeClock.advance: expected a duration of 0 ms or more, got ${String(ms)}`);
    const end = this.mono + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.wall += due.at - this.mono;
      this.mono = due.at;
      due.callback();
    }
    this.wall += end - this.mono;
    this.mono = end;
    await settle();
  }
}

/** Lets pending promise callbacks and I/O callbacks that are already due run (a few turns of the event loop). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
