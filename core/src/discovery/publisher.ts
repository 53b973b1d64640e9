import type { AnnotationPatch } from '../api/cluster.js';
import { describeError, WeftError } from '../api/errors.js';
import type { Logger } from '../observe/logger.js';
import { backoffDelay } from '../reconcile/backoff.js';

/** The annotations weft writes: `weft.io/<name>`. */
export const ANNOTATION_KEY = /^weft\.io\/[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

/**
 * How long a written value counts as on the node while the source does not show it yet (the watch brings the node
 * back tens of milliseconds after the write). Without it every write was followed by the same write again until the
 * echo came: three identical patches per agent start in the lab. Once the source shows the value, or after this
 * long, the source's word rules again: a value someone else changes later is put back.
 */
const ECHO_WAIT_MS = 5_000;

export interface PublisherOptions {
  /** Writes one merge patch of the own node's annotations. */
  readonly write: (patch: AnnotationPatch) => Promise<void>;
  /** The own node's annotations as the source last saw them (what is there now). */
  readonly current: () => Readonly<Record<string, string>>;
  readonly logger: Logger;
  /**
   * Wait this long so that publishes from several plugins make one write (default 5 ms: plugins that run together
   * publish within it; a longer wait delayed every join, since peers learn a new node's key from this write).
   */
  readonly debounceMs?: number;
  /** How long a written value counts as there while the source does not show it (default 5 s; tests shorten it). */
  readonly echoWaitMs?: number;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /**
   * Whether the source is connected to where it writes (the API server answers). A write that failed while it was
   * not is retried as soon as it is again (checked every 250 ms), not after the rest of its backoff: what was
   * published during an outage lands right after it.
   */
  readonly connected?: () => boolean;
}

/**
 * Merges what every plugin publishes into one patch of the own node, written only when it differs from what the node
 * has, and retried with backoff until it lands (an API outage delays it; it is not lost). Each plugin's keys are its
 * own: a plugin switched off has its keys removed.
 */
export class AnnotationPublisher {
  private readonly byPlugin = new Map<string, Map<string, string | null>>();
  private timer: NodeJS.Timeout | undefined;
  /** While a write waits out its backoff after failing disconnected: the check for the connection's return. */
  private watchReturn: NodeJS.Timeout | undefined;
  /** When the last write stops counting as there: a look whether the source shows it then. */
  private echoCheck: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private failures = 0;
  private stopped = false;
  /**
   * The last patch written and until when its values count as there: the source sees a write only when its watch
   * brings the node back (tens of milliseconds later), and until then `current()` still shows the old values.
   */
  private written: { values: Map<string, string | null>; until: number } | undefined;

  constructor(private readonly o: PublisherOptions) {}

  /** Records a plugin's values (`null` removes a key) and schedules a write. Throws on a key outside `weft.io/`. */
  publish(plugin: string, patch: AnnotationPatch): void {
    for (const [key, value] of Object.entries(patch)) {
      if (!ANNOTATION_KEY.test(key)) throw new WeftError('WEFT_REGISTRATION_CONFLICT', `plugin "${plugin}": annotation ${JSON.stringify(key)} is not weft.io/<name>`);
      if (value !== null && typeof value !== 'string') throw new TypeError(`plugin "${plugin}": annotation ${key} must be a string or null`);
    }
    const mine = this.byPlugin.get(plugin) ?? new Map<string, string | null>();
    for (const [key, value] of Object.entries(patch)) mine.set(key, value);
    this.byPlugin.set(plugin, mine);
    // What the node already has (the steady case: a plugin publishes the same facts every run) needs no write.
    if (this.timer === undefined && this.writing === undefined && Object.keys(this.pending()).length === 0) return;
    this.schedule(this.o.debounceMs ?? 5);
  }

  /** Removes every key the plugin published (it was switched off). */
  forget(plugin: string): void {
    const mine = this.byPlugin.get(plugin);
    if (!mine) return;
    for (const key of mine.keys()) mine.set(key, null);
    this.schedule(0);
  }

  /** The patch that would bring the node to what the plugins published; empty when nothing differs. */
  pending(): Record<string, string | null> {
    const want = new Map<string, string | null>();
    for (const mine of this.byPlugin.values()) for (const [k, v] of mine) if (v !== null || !want.has(k)) want.set(k, v);
    const have = this.o.current();
    if (this.written !== undefined && performance.now() >= this.written.until) this.written = undefined;
    const written = this.written?.values;
    // A written value the source shows is no longer waited for: from then on the source's word rules.
    if (written !== undefined) for (const [k, v] of written) if ((have[k] ?? null) === v) written.delete(k);
    const patch: Record<string, string | null> = {};
    for (const [k, v] of want) {
      // What the node holds: what was just written there and the source does not show yet, else what it shows.
      const there = written?.has(k) === true ? written.get(k) : (have[k] ?? null);
      if (there !== v) patch[k] = v;
    }
    return patch;
  }

  /** Resolves when nothing is left to write (for shutdown and tests). */
  async flushed(timeoutMs = 5_000): Promise<boolean> {
    const end = performance.now() + timeoutMs;
    while (performance.now() < end) {
      if (this.timer === undefined && this.writing === undefined && Object.keys(this.pending()).length === 0) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    clearInterval(this.watchReturn);
    this.watchReturn = undefined;
    clearTimeout(this.echoCheck);
    this.echoCheck = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      clearInterval(this.watchReturn);
      this.watchReturn = undefined;
      this.writing ??= this.write().finally(() => {
        this.writing = undefined;
      });
    }, ms);
  }

  private async write(): Promise<void> {
    const patch = this.pending();
    if (Object.keys(patch).length === 0) return;
    try {
      await this.o.write(patch);
      const now = performance.now();
      const values = this.written !== undefined && now < this.written.until ? this.written.values : new Map<string, string | null>();
      for (const [k, v] of Object.entries(patch)) values.set(k, v);
      this.written = { values, until: now + (this.o.echoWaitMs ?? ECHO_WAIT_MS) };
      this.failures = 0;
      this.o.logger.debug({ annotations: Object.keys(patch) }, 'published annotations');
      // Something may have been published while this write was under way.
      if (Object.keys(this.pending()).length > 0) this.schedule(0);
      // When the wait for the echo ends, what the source shows rules: a value that is not there then (overwritten, or
      // the echo never came) is written again — also for a plugin that was switched off and publishes no more.
      clearTimeout(this.echoCheck);
      this.echoCheck = setTimeout(() => {
        this.echoCheck = undefined;
        if (Object.keys(this.pending()).length > 0) this.schedule(0);
      }, (this.o.echoWaitMs ?? ECHO_WAIT_MS) + 10);
      this.echoCheck.unref();
    } catch (err) {
      this.failures += 1;
      const delay = backoffDelay(this.failures, this.o.backoffInitialMs ?? 500, this.o.backoffMaxMs ?? 30_000);
      this.o.logger.warn({ err: describeError(err), retryInMs: delay, annotations: Object.keys(patch) }, 'publishing annotations failed; retrying');
      this.schedule(delay);
      const connected = this.o.connected;
      if (connected && !connected() && this.timer !== undefined) {
        this.watchReturn = setInterval(() => {
          if (!connected()) return;
          clearTimeout(this.timer);
          this.timer = undefined;
          this.schedule(0);
        }, 250);
        this.watchReturn.unref();
      }
    }
  }
}
