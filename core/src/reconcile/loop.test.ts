import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isWeftError, TerminalError, WeftError } from '../api/errors.js';
import { type LoopSettings, ReconcileLoop, type RunContext, type RunReport } from './loop.js';

const SETTINGS: LoopSettings = { debounce: 100, resync: 60_000, timeout: 5_000, backoffInitial: 1_000, backoffMax: 8_000 };

/** A loop whose reconcile is scripted per test, recording every run and report. */
function harness(reconcile: (ctx: RunContext, n: number) => Promise<unknown>, settings: Partial<LoopSettings> = {}) {
  const runs: { at: number; reasons: string[]; attempt: number }[] = [];
  const reports: RunReport[] = [];
  const stuck: boolean[] = [];
  let active = 0;
  let maxActive = 0;
  const loop = new ReconcileLoop({
    settings: { ...SETTINGS, ...settings },
    random: () => 0.5,
    stuckAfter: 2_000,
    reconcile: async (ctx) => {
      runs.push({ at: Date.now(), reasons: [...ctx.reasons].sort(), attempt: ctx.attempt });
      active += 1;
      maxActive = Math.max(maxActive, active);
      try {
        return (await reconcile(ctx, runs.length)) as undefined;
      } finally {
        active -= 1;
      }
    },
    onRun: (r) => reports.push(r),
    onStuck: (s) => stuck.push(s),
  });
  return { loop, runs, reports, stuck, maxActive: () => maxActive };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(signal.reason as Error);
    });
  });

describe('ReconcileLoop', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs at once after a quiet spell, with every trigger of that turn; triggers that follow a run merge into one run a debounce after it', async () => {
    const h = harness(async () => undefined);
    h.loop.start();
    h.loop.trigger('cluster');
    h.loop.trigger('cluster');
    h.loop.trigger('config');
    await vi.advanceTimersByTimeAsync(0);
    expect(h.runs).toEqual([{ at: 0, reasons: ['cluster', 'config', 'start'], attempt: 0 }]);
    // A burst right after that run: one run, a debounce after the run ended.
    for (const [t, reason] of [[10, 'a'], [40, 'b'], [70, 'a']] as const) {
      await vi.advanceTimersByTimeAsync(t - Date.now());
      h.loop.trigger(reason);
    }
    await vi.advanceTimersByTimeAsync(29);
    expect(h.runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.runs[1]).toEqual({ at: 100, reasons: ['a', 'b'], attempt: 0 });
    // Quiet again: a lone trigger does not wait.
    await vi.advanceTimersByTimeAsync(4_900);
    h.loop.trigger('cluster');
    await vi.advanceTimersByTimeAsync(1);
    expect(h.runs.map((r) => r.at)).toEqual([0, 100, 5_000]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(h.runs).toHaveLength(3);
    await h.loop.stop();
  });

  it('never overlaps runs, and triggers during a run cause exactly one more run', async () => {
    const h = harness((ctx) => sleep(1_000, ctx.signal));
    h.loop.start();
    await vi.advanceTimersByTimeAsync(100); // first run starts
    expect(h.runs).toHaveLength(1);
    for (let i = 0; i < 10; i++) {
      h.loop.trigger(`t${i % 2}`);
      await vi.advanceTimersByTimeAsync(50);
    }
    expect(h.runs).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(h.runs).toHaveLength(2);
    // The first run started at once and ended at 1,000: the next one a debounce later.
    expect(h.runs[1]).toEqual({ at: 1_100, reasons: ['t0', 't1'], attempt: 0 });
    expect(h.maxActive()).toBe(1);
    await h.loop.stop();
  });

  it('retries errors with exponential backoff, jitter and a cap, then resets on success', async () => {
    const h = harness(async (_ctx, n) => {
      if (n <= 6) throw new Error(`boom ${n}`);
    });
    h.loop.start();
    await vi.advanceTimersByTimeAsync(60_000);
    const gaps = h.runs.slice(1).map((r, i) => r.at - (h.runs[i] as { at: number }).at);
    // random 0.5 → 75 % of 1 s, 2 s, 4 s, 8 s, then capped at 8 s
    expect(gaps.slice(0, 6)).toEqual([750, 1_500, 3_000, 6_000, 6_000, 6_000]);
    expect(h.runs.map((r) => r.attempt).slice(0, 7)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(h.reports.slice(0, 7).map((r) => r.result)).toEqual(['error', 'error', 'error', 'error', 'error', 'error', 'success']);
    expect(h.runs[1]?.reasons).toEqual(['retry']);
    expect(h.runs).toHaveLength(7); // no retry after the success
    await h.loop.stop();
  });

  it('computes the jittered backoff within [½, 1) of the capped exponential', () => {
    for (const random of [0, 0.25, 0.999]) {
      const loop = new ReconcileLoop({ settings: SETTINGS, random: () => random, reconcile: async () => undefined });
      for (let n = 1; n < 70; n++) {
        const base = Math.min(8_000, 1_000 * 2 ** (n - 1));
        const d = loop.backoff(n);
        expect(d).toBeGreaterThanOrEqual(base / 2);
        expect(d).toBeLessThanOrEqual(base);
      }
    }
  });

  it('does not retry a terminal error but reports it', async () => {
    const h = harness(async () => {
      throw new TerminalError('config can never work');
    });
    h.loop.start();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(h.runs).toHaveLength(1);
    expect(h.reports[0]?.result).toBe('terminal');
    h.loop.trigger('cluster'); // a new trigger still runs
    await vi.advanceTimersByTimeAsync(100);
    expect(h.runs).toHaveLength(2);
    await h.loop.stop();
  });

  it('counts a desired state the driver refused (WEFT_KERNEL_INPUT) as terminal: no retry, a kernel failure is retried', async () => {
    const input = harness(async () => {
      throw new WeftError('WEFT_KERNEL_INPUT', 'route 198.18.5.1/24: host bits set');
    });
    input.loop.start();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(input.runs).toHaveLength(1);
    expect(input.reports[0]?.result).toBe('terminal');
    await input.loop.stop();
    const apply = harness(async () => {
      throw new WeftError('WEFT_KERNEL_APPLY', 'link weft-wg0: RTNETLINK answers: Device or resource busy');
    });
    apply.loop.start();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(apply.runs.length).toBeGreaterThan(3);
    expect(apply.reports[0]?.result).toBe('error');
    await apply.loop.stop();
  });

  it('honours requeueAfter', async () => {
    const h = harness(async (_ctx, n) => (n < 3 ? { requeueAfter: 2_000 } : undefined));
    h.loop.start();
    await vi.advanceTimersByTimeAsync(20_000);
    expect(h.runs.map((r) => r.at)).toEqual([0, 2_000, 4_000]);
    expect(h.runs[1]?.reasons).toEqual(['requeue']);
    await h.loop.stop();
  });

  it('resyncs a period (±10 % jitter) after the last run', async () => {
    const h = harness(async () => undefined, { resync: 10_000 });
    h.loop.start();
    await vi.advanceTimersByTimeAsync(35_000);
    // random 0.5 → exactly the period, from the end of the run before (each run here ends at once); the run itself on
    // the next turn (setTimeout 0: a millisecond)
    expect(h.runs.map((r) => r.at)).toEqual([0, 10_001, 20_002, 30_003]);
    expect(h.runs[1]?.reasons).toEqual(['resync']);
    // A run for another reason puts the resync off by a period.
    h.loop.trigger('cluster');
    await vi.advanceTimersByTimeAsync(9_000);
    expect(h.runs.map((r) => r.reasons.join())).toEqual(['start', 'resync', 'resync', 'resync', 'cluster']);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(h.runs.at(-1)?.reasons).toEqual(['resync']);
    await h.loop.stop();
  });

  it('a plugin that requeues itself more often than the resync is never run for a resync', async () => {
    const h = harness(async () => ({ requeueAfter: 9_000 }), { resync: 10_000 });
    h.loop.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.runs.length).toBe(7);
    expect(h.runs.slice(1).every((r) => r.reasons.join() === 'requeue')).toBe(true);
    await h.loop.stop();
  });

  it('aborts a run that outlives its timeout through its signal, and retries', async () => {
    let seen: unknown;
    const h = harness(async (ctx, n) => {
      if (n === 1) {
        try {
          await sleep(60_000, ctx.signal);
        } catch (err) {
          seen = err;
          throw err;
        }
      }
    });
    h.loop.start();
    await vi.advanceTimersByTimeAsync(100 + 5_000);
    expect(isWeftError(seen, 'WEFT_RECONCILE_TIMEOUT')).toBe(true);
    expect(h.reports[0]?.result).toBe('timeout');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(h.runs).toHaveLength(2);
    expect(h.reports[1]?.result).toBe('success');
    await h.loop.stop();
  });

  it('reports a run that ignores its abort as stuck and never starts another beside it', async () => {
    let release: () => void = () => undefined;
    const h = harness(async (_ctx, n) => {
      if (n === 1) await new Promise<void>((r) => (release = r)); // ignores the signal
    });
    h.loop.start();
    await vi.advanceTimersByTimeAsync(100 + 5_000 + 2_000);
    expect(h.stuck).toEqual([true]);
    h.loop.trigger('cluster');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.runs).toHaveLength(1);
    release();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(h.stuck).toEqual([true, false]);
    expect(h.reports[0]?.result).toBe('timeout');
    expect(h.runs.length).toBeGreaterThanOrEqual(2);
    expect(h.maxActive()).toBe(1);
    await h.loop.stop();
  });

  it('keeps one loop on schedule while another hangs or throws synchronously', async () => {
    const hung = harness(() => new Promise(() => undefined));
    const throwing = harness(() => {
      throw new Error('sync throw');
    });
    const healthy = harness(async () => ({ requeueAfter: 1_000 }));
    for (const h of [hung, throwing, healthy]) h.loop.start();
    await vi.advanceTimersByTimeAsync(10_050);
    expect(healthy.runs.map((r) => r.at)).toEqual([0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000, 9_000, 10_000]);
    expect(throwing.reports[0]?.result).toBe('error');
    expect(hung.runs).toHaveLength(1);
    await healthy.loop.stop();
    await throwing.loop.stop();
    const stopping = hung.loop.stop(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await stopping).toBe(false);
  });

  it('stop aborts the current run, is idempotent, and ends scheduling', async () => {
    let aborted = false;
    const h = harness(async (ctx) => {
      await sleep(60_000, ctx.signal).catch((err: unknown) => {
        aborted = true;
        throw err;
      });
    });
    h.loop.start();
    await vi.advanceTimersByTimeAsync(200);
    const first = h.loop.stop();
    const second = h.loop.stop();
    await vi.advanceTimersByTimeAsync(0);
    expect(await first).toBe(true);
    expect(await second).toBe(true);
    expect(aborted).toBe(true);
    h.loop.trigger('cluster');
    await vi.advanceTimersByTimeAsync(120_000);
    expect(h.runs).toHaveLength(1);
  });
});
