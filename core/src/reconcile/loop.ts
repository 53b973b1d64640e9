import { isTerminal, WeftError } from '../api/errors.js';
import type { ReconcileOutcome } from '../api/plugin.js';
import type { Clock, ClockTimer } from '../api/services.js';
import { backoffDelay } from './backoff.js';
import { systemClock } from './clock.js';

/** Timing of one plugin's loop, all in milliseconds. */
export interface LoopSettings {
  readonly debounce: number;
  readonly resync: number;
  readonly timeout: number;
  readonly backoffInitial: number;
  readonly backoffMax: number;
}

/** How a run ended. */
export type RunResult = 'success' | 'error' | 'terminal' | 'timeout';

/** What the loop hands the reconcile function. */
export interface RunContext {
  readonly signal: AbortSignal;
  readonly reasons: ReadonlySet<string>;
  readonly attempt: number;
}

/** A finished run, as reported to observers. */
export interface RunReport {
  readonly result: RunResult;
  readonly seconds: number;
  readonly reasons: ReadonlySet<string>;
  readonly attempt: number;
  readonly error?: unknown;
  /** When the next run is due without a trigger (retry or requeue), in ms from now. */
  readonly nextInMs?: number;
}

export interface LoopOptions {
  readonly settings: LoopSettings;
  readonly reconcile: (context: RunContext) => Promise<ReconcileOutcome | void>;
  /** Called after each run; must not throw. */
  readonly onRun?: (report: RunReport) => void;
  /** Called when a run ignored its abort and still has not settled `stuckAfter` ms later, and again when it settles. */
  readonly onStuck?: (stuck: boolean) => void;
  /** How long a run may ignore its aborted signal before it is reported stuck (default 10 s). */
  readonly stuckAfter?: number;
  /** Random source in [0, 1) for jitter; tests fix it. */
  readonly random?: () => number;
  /** The clock of debounce, resync, backoff, requeue and the run timeout (default the system's); tests move a fake one. */
  readonly clock?: Clock;
}

/**
 * The reconcile loop of one plugin, with the semantics of controller-runtime's work queue for a single key:
 * - triggers merge: reasons collect until the next run. A trigger after a quiet spell (nothing ran for `debounce`
 *   ms) runs at once — on the next turn of the event loop, so that the triggers of this turn join it — and a trigger
 *   that follows a run closer than that waits until `debounce` ms after that run ended: a burst costs one run more
 *   at most, and a lone change (a node joining) is acted on without waiting;
 * - never two runs at once; a trigger during a run causes exactly one more run after it;
 * - an error retries after a capped exponential backoff with jitter; a terminal one (`isTerminal`: a TerminalError,
 *   or `WEFT_KERNEL_INPUT`) does not retry;
 * - `requeueAfter` from a run schedules another; a resync triggers one when `resync` (±10 %) passed since the last
 *   run ended, whatever its reason (every run looks at everything: a plugin that requeues itself as often is never
 *   run twice for it);
 * - a run that outlives `timeout` is aborted through its signal. It is awaited still (never overlapped); if it
 *   ignores the abort for `stuckAfter` ms it is reported stuck.
 */
export class ReconcileLoop {
  private settings: LoopSettings;
  private readonly random: () => number;
  private readonly clock: Clock;
  private readonly pending = new Set<string>();
  private timer: ClockTimer | undefined;
  private dueAt = Number.POSITIVE_INFINITY;
  private resyncTimer: ClockTimer | undefined;
  private current: { promise: Promise<void>; controller: AbortController } | undefined;
  private failures = 0;
  /** When the last run ended (the clock's monotonic time); long ago before the first. */
  private lastEnd = Number.NEGATIVE_INFINITY;
  private started = false;
  private stopped = false;

  constructor(private readonly options: LoopOptions) {
    this.settings = options.settings;
    this.random = options.random ?? Math.random;
    this.clock = options.clock ?? systemClock;
  }

  /** Starts the loop with a first run (reason `start`) and the resync timer. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.trigger('start');
    this.armResync();
  }

  /** Asks for a run. Level-triggered: the reason is informative, every run looks at everything. */
  trigger(reason: string): void {
    if (this.stopped) return;
    this.pending.add(reason);
    if (!this.started || this.current) return; // the run in progress schedules the next one when it ends
    this.scheduleIn(this.lastEnd + this.settings.debounce - this.clock.monotonic());
  }

  /** New timings; they apply from the next scheduling decision. */
  updateSettings(settings: LoopSettings): void {
    const resyncChanged = settings.resync !== this.settings.resync;
    this.settings = settings;
    if (resyncChanged && this.started && !this.stopped) this.armResync();
  }

  /** Whether a run is in progress. */
  get running(): boolean {
    return this.current !== undefined;
  }

  /**
   * Stops scheduling, aborts a run in progress and waits for it to settle, at most `waitMs`. Idempotent.
   * Resolves `false` when the run did not settle in time.
   */
  async stop(waitMs = 10_000): Promise<boolean> {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    this.clock.clearTimeout(this.resyncTimer);
    this.timer = undefined;
    this.resyncTimer = undefined;
    const run = this.current;
    if (!run) return true;
    run.controller.abort(new Error('plugin stopping'));
    let timeout: NodeJS.Timeout | undefined;
    const settled = await Promise.race([
      run.promise.then(() => true),
      new Promise<boolean>((resolve) => {
        timeout = setTimeout(() => resolve(false), waitMs);
      }),
    ]);
    clearTimeout(timeout);
    return settled;
  }

  private armResync(): void {
    this.clock.clearTimeout(this.resyncTimer);
    // ±10 % so that agents started together do not resync in lockstep.
    const delay = this.settings.resync * (0.9 + 0.2 * this.random());
    this.resyncTimer = this.clock.setTimeout(() => {
      this.trigger('resync');
      this.armResync();
    }, delay);
    this.resyncTimer.unref?.();
  }

  private scheduleIn(ms: number): void {
    const at = this.clock.monotonic() + Math.max(0, ms);
    if (this.timer !== undefined && this.dueAt <= at) return;
    this.clock.clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.dueAt = Number.POSITIVE_INFINITY;
      this.runOnce();
    }, Math.max(0, ms));
  }

  private runOnce(): void {
    if (this.stopped || this.current || this.pending.size === 0) return;
    const reasons = new Set(this.pending);
    this.pending.clear();
    const controller = new AbortController();
    const attempt = this.failures;
    const promise = this.execute(controller, reasons, attempt).then(({ result, nextInMs }) => {
      this.current = undefined;
      this.afterRun(result, nextInMs);
    });
    this.current = { promise, controller };
  }

  private async execute(
    controller: AbortController,
    reasons: ReadonlySet<string>,
    attempt: number,
  ): Promise<{ result: RunResult; nextInMs: number | undefined }> {
    const started = this.clock.monotonic();
    let timedOut = false;
    let stuck = false;
    const timeout = this.clock.setTimeout(() => {
      timedOut = true;
      controller.abort(new WeftError('WEFT_RECONCILE_TIMEOUT', `reconcile did not finish within ${this.settings.timeout} ms`));
      stuckTimer = this.clock.setTimeout(() => {
        stuck = true;
        this.options.onStuck?.(true);
      }, this.options.stuckAfter ?? 10_000);
    }, this.settings.timeout);
    let stuckTimer: ClockTimer | undefined;

    let result: RunResult;
    let error: unknown;
    let outcome: ReconcileOutcome | void = undefined;
    try {
      // A synchronous throw inside reconcile becomes a rejection here, never an escape.
      outcome = await Promise.resolve().then(() => this.options.reconcile({ signal: controller.signal, reasons, attempt }));
      result = timedOut ? 'timeout' : 'success';
    } catch (err) {
      error = err;
      result = timedOut ? 'timeout' : isTerminal(err) ? 'terminal' : 'error';
    } finally {
      this.clock.clearTimeout(timeout);
      this.clock.clearTimeout(stuckTimer);
    }
    if (stuck) this.options.onStuck?.(false);
    if (timedOut && error === undefined) error = controller.signal.reason;

    let nextInMs: number | undefined;
    if (result === 'success' || result === 'terminal') {
      this.failures = 0;
      const requeue = result === 'success' ? outcome?.requeueAfter : undefined;
      if (typeof requeue === 'number' && Number.isFinite(requeue) && requeue >= 0) nextInMs = requeue;
    } else {
      this.failures += 1;
      nextInMs = this.backoff(this.failures);
    }

    this.report({
      result,
      seconds: (this.clock.monotonic() - started) / 1000,
      reasons,
      attempt,
      ...(error !== undefined ? { error } : {}),
      ...(nextInMs !== undefined ? { nextInMs } : {}),
    });

    return { result, nextInMs };
  }

  private report(report: RunReport): void {
    try {
      this.options.onRun?.(report);
    } catch {
      // An observer's bug must not wedge the loop.
    }
  }

  private afterRun(result: RunResult, nextInMs: number | undefined): void {
    this.lastEnd = this.clock.monotonic();
    if (this.stopped) return;
    // This run looked at everything: the next resync is due a full period from now.
    this.armResync();
    if (this.pending.size > 0) this.scheduleIn(this.settings.debounce);
    if (nextInMs !== undefined) {
      this.pending.add(result === 'success' ? 'requeue' : 'retry');
      this.scheduleIn(nextInMs);
    }
  }

  /** Delay before retry number `n` (1-based): {@link backoffDelay} of the loop's settings. */
  backoff(n: number): number {
    return backoffDelay(n, this.settings.backoffInitial, this.settings.backoffMax, this.random);
  }
}
