import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../observe/logger.js';

/** V8's `gc()` as `--expose-gc` gives it. */
type Collect = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' | 'regular' }) => void;

export interface MemoryReducerOptions {
  /** The process's resident memory in bytes (default `process.memoryUsage.rss`). */
  readonly rss?: () => number;
  /** How often resident memory is looked at (default 30 s). */
  readonly checkEveryMs?: number;
  /** Growth over what stayed after the last reduction that makes the next one (default 3 MiB). */
  readonly slackBytes?: number;
  /** The least time between two reductions (default 120 s). */
  readonly minGapMs?: number;
  readonly now?: () => number;
}

/**
 * Gives back what work left behind. V8 keeps the pages its heap grew into, and the malloc'd memory of buffers it
 * has not yet collected, until a collection that reduces memory, which a mostly idle process seldom has: a lab agent
 * under churn (a node leaving and joining every 15 s) grew 70.6 → 79.1 MiB in 10 minutes, all of it private memory,
 * and at 5,000 nodes a minute of peer changes left 400–500 MiB resident against a heap of 70–90. Go, which Kilo is
 * written in, forces a collection every two minutes and returns free pages in the background; this is weft's
 * counterpart, driven by what it costs: every `checkEveryMs` (one read of /proc, nothing else) it compares resident
 * memory with what stayed after the last reduction, and when it grew by more than `slackBytes`, and the last one is
 * `minGapMs` ago, runs one last-resort collection (all garbage, heap compacted, free pages handed back: 4.5–7.7 MiB
 * of a lab agent's 73–77). A steady agent never runs one; one that grows runs at most one per `minGapMs`, and what a
 * collection cannot give back raises the floor instead of making it run again.
 *
 * The collection blocks the event loop while it runs: 50–80 ms of CPU on a lab agent (a `regular` major collection
 * costs half that and gives nothing back), more at 5,000 nodes.
 */
export class MemoryReducer {
  private timer: NodeJS.Timeout | undefined;
  /** Resident memory right after the last reduction (or when the reducer started). */
  private floor: number;
  private last: number;
  private readonly rss: () => number;
  private readonly now: () => number;
  /** Reductions run so far. */
  reductions = 0;

  constructor(
    private readonly collect: Collect,
    private readonly logger: Logger,
    private readonly options: MemoryReducerOptions = {},
  ) {
    this.rss = options.rss ?? (() => process.memoryUsage.rss());
    this.now = options.now ?? (() => performance.now());
    this.floor = this.rss();
    this.last = this.now();
  }

  /**
   * The reducer of this process: turns on `--expose-gc` (from now on; set on the command line it would change V8's
   * flag hash and cost the start Node's compiled built-ins) and takes `gc` from a fresh context. Undefined when V8
   * does not give it.
   */
  static forThisProcess(logger: Logger, options?: MemoryReducerOptions): MemoryReducer | undefined {
    setFlagsFromString('--expose-gc');
    const collect: unknown = runInNewContext('gc');
    if (typeof collect !== 'function') return undefined;
    return new MemoryReducer(collect as Collect, logger, options);
  }

  start(): void {
    this.timer ??= setInterval(() => this.check(), this.options.checkEveryMs ?? 30_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look: reduces when memory grew past the slack and the last reduction is long enough ago. */
  check(): boolean {
    const rss = this.rss();
    if (rss <= this.floor + (this.options.slackBytes ?? 3 * 1024 * 1024)) return false;
    if (this.now() - this.last < (this.options.minGapMs ?? 120_000)) return false;
    const started = this.now();
    this.collect({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    this.last = this.now();
    this.floor = this.rss();
    this.reductions += 1;
    const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;
    this.logger.debug({ rssMiB: mib(rss), afterMiB: mib(this.floor), ms: Math.round(this.last - started) }, 'gave memory back');
    return true;
  }
}
