import { watch as watchFs, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';

export interface ConfigWatchOptions {
  /** Called with the file's new text whenever it differs from the last text seen. */
  readonly onChange: (text: string) => void;
  /** Called when watching itself fails (the poll still runs). */
  readonly onWatchError?: (err: unknown) => void;
  /** Re-read at least this often, in case a change notification was missed (default 10 s). */
  readonly pollMs?: number;
  /** Wait this long after a notification so that a burst of events (a symlink swap) reads once (default 200 ms). */
  readonly settleMs?: number;
}

/**
 * Watches a config file the way a mounted ConfigMap changes: the kubelet writes a new timestamped directory and
 * swaps the `..data` symlink, so the file's own inode never changes. We watch the file's directory instead, re-read
 * the file through its symlinks, and report only a real change of content. A periodic poll covers lost events.
 */
export function watchConfigFile(file: string, options: ConfigWatchOptions): { close(): void; initial(text: string): void } {
  const pollMs = options.pollMs ?? 10_000;
  const settleMs = options.settleMs ?? 200;
  let last: string | undefined;
  let closed = false;
  let settle: NodeJS.Timeout | undefined;
  let reading = false;
  let again = false;

  const check = async (): Promise<void> => {
    if (closed) return;
    if (reading) {
      again = true;
      return;
    }
    reading = true;
    try {
      const text = await readFile(file, 'utf8');
      if (!closed && last !== undefined && text !== last) {
        last = text;
        options.onChange(text);
      } else if (last === undefined) {
        last = text;
      }
    } catch {
      // Mid-swap the file can be missing for a moment; the next event or poll reads it.
    } finally {
      reading = false;
      if (again && !closed) {
        again = false;
        void check();
      }
    }
  };

  const schedule = (): void => {
    clearTimeout(settle);
    settle = setTimeout(() => void check(), settleMs);
  };

  let watcher: FSWatcher | undefined;
  try {
    const name = basename(file);
    watcher = watchFs(dirname(file), { persistent: false }, (_event, changed) => {
      // `..data` is the ConfigMap symlink; any other name but ours is noise.
      if (changed === null || changed === name || changed.startsWith('..')) schedule();
    });
    watcher.on('error', (err) => options.onWatchError?.(err));
  } catch (err) {
    options.onWatchError?.(err);
  }
  const poll = setInterval(() => void check(), pollMs);
  poll.unref();

  return {
    /** The text the agent started from, so that the first event compares against it. */
    initial(text: string) {
      last = text;
    },
    close() {
      closed = true;
      clearTimeout(settle);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
