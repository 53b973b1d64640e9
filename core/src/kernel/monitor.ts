import { type ChildProcess, spawn } from 'node:child_process';

/**
 * How long after `ip monitor` starts its word is trusted. It says nothing when its netlink subscription is in
 * place; it takes a few milliseconds, and a change in that gap would go unseen, so reads that begin within this time
 * of the start are never reused.
 */
export const MONITOR_SETTLE_MS = 1_000;
/** A monitor that died is started again at the next read, but not more often than this. */
export const MONITOR_RESTART_MS = 5_000;

/**
 * Events (`ip -o monitor`: one line each) that change nothing the driver reads: neighbours that are not permanent
 * (ARP and NDP come and go all the time on the underlay; the driver owns only permanent ones), routes of the kernel's
 * own protocol (the driver reads only its owners' protocols) and IPv6 link-local addresses (never an owner's).
 */
const IRRELEVANT: readonly RegExp[] = [
  /^(?:Deleted |Miss )?\S* ?dev \S+ .*\b(?:REACHABLE|STALE|DELAY|PROBE|FAILED|INCOMPLETE|NOARP|NONE)\s*$/,
  / proto kernel /,
  /^(?:Deleted )?\d+: \S+\s+inet6 fe80:/,
];

/** Whether a line of `ip -o monitor` may change what the driver reads (see {@link IRRELEVANT}). */
export function relevantEvent(line: string): boolean {
  return line !== '' && !IRRELEVANT.some((re) => re.test(line));
}

/**
 * Tells whether a namespace's links, addresses, routes, rules or permanent neighbours may have changed since a read,
 * from one long-lived `ip monitor` (the kernel's rtnetlink events; one process for the agent's life, not one per
 * read). Reads are keyed by what they asked; {@link KernelMonitor.reuse} hands back a read when no event came since it
 * began. Anything uncertain — the monitor not started, settling, dead, or a write by the driver itself — means read
 * again.
 */
export class KernelMonitor {
  private child: ChildProcess | undefined;
  private startedAt = -Infinity;
  private generation = 0;
  private readonly kept = new Map<string, { generation: number; value: unknown }>();
  private closed = false;

  /** @param command the `ip -o … monitor …` command line in the namespace (a program and its arguments, no shell). */
  constructor(private readonly command: readonly [string, readonly string[]]) {}

  /** Whether reads can be reused now (the monitor runs and has settled); starts it when it does not run. */
  private trusted(): boolean {
    if (this.closed) return false;
    const now = performance.now();
    if (this.child === undefined && now - this.startedAt >= MONITOR_RESTART_MS) this.start(now);
    return this.child !== undefined && now - this.startedAt >= MONITOR_SETTLE_MS;
  }

  private start(now: number): void {
    this.startedAt = now;
    let child: ChildProcess;
    try {
      child = spawn(this.command[0], [...this.command[1]], { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return;
    }
    this.child = child;
    let partial = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (relevantEvent(line)) this.generation += 1;
      }
    });
    const gone = () => {
      if (this.child !== child) return;
      this.child = undefined;
      this.generation += 1;
    };
    child.once('error', gone);
    child.once('exit', gone);
    // The agent's exit does not wait for it.
    child.unref();
    (child.stdout as { unref?: () => void } | null)?.unref?.();
  }

  /**
   * `read()`'s answer, or the one it gave last time under this key when nothing changed since that read began.
   * The key names the read (its commands): different reads are kept apart.
   */
  async reuse<T>(key: string, read: () => Promise<T>): Promise<{ value: T; reused: boolean }> {
    const trusted = this.trusted();
    const kept = this.kept.get(key);
    if (trusted && kept !== undefined && kept.generation === this.generation) return { value: kept.value as T, reused: true };
    const generation = this.generation;
    const value = await read();
    if (trusted) this.kept.set(key, { generation, value });
    return { value, reused: false };
  }

  /** The driver wrote: nothing read before stands (the events for the write may not have arrived yet). */
  forget(): void {
    this.generation += 1;
    this.kept.clear();
  }

  /** The pid of the running `ip monitor`, if any (tests). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stops the monitor for good. */
  close(): void {
    this.closed = true;
    this.kept.clear();
    const child = this.child;
    this.child = undefined;
    if (child?.pid !== undefined && child.exitCode === null) child.kill('SIGTERM');
  }
}
