import { statSync, watch as watchFs, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { type ConfigText, readConfigTexts } from './sources.js';

export interface ConfigWatchOptions {
  /** Called with the config's files whenever any of them differs from what was last seen (or one came or went). */
  readonly onChange: (texts: ConfigText[]) => void;
  /** Called when watching itself fails (the poll still runs). */
  readonly onWatchError?: (err: unknown) => void;
  /** Re-read at least this often, in case a change notification was missed (default 10 s). */
  readonly pollMs?: number;
  /** Wait this long after a notification so that a burst of events (a symlink swap) reads once (default 200 ms). */
  readonly settleMs?: number;
}

/**
 * Watches a config — a file, or a directory of them (see `readConfigTexts`) — the way a mounted ConfigMap changes:
 * the kubelet writes a new timestamped directory and swaps the `..data` symlink, so no file's own inode ever changes.
 * We watch the directory instead, re-read the files through their symlinks, and report only a real change of
 * content. A periodic poll covers lost events.
 */
export function watchConfig(path: string, options: ConfigWatchOptions): { close(): void; initial(texts: readonly ConfigText[]): void } {
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
      const read = await readConfigTexts(path);
      // Mid-swap a file can be missing for a moment; the next event or poll reads it.
      if ('problems' in read) return;
      const seen = JSON.stringify(read.texts);
      if (!closed && last !== undefined && seen !== last) {
        last = seen;
        options.onChange(read.texts);
      } else if (last === undefined) {
        last = seen;
      }
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
    // A directory: any of its files; a file: the folder it is in, and of its events only its name's.
    const directory = statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;
    const name = directory ? undefined : basename(path);
    watcher = watchFs(directory ? path : dirname(path), { persistent: false }, (_event, changed) => {
      // `..data` is the ConfigMap symlink; in a file's folder any other name but the file's is noise.
      if (changed === null || name === undefined || changed === name || changed.startsWith('..')) schedule();
    });
    watcher.on('error', (err) => options.onWatchError?.(err));
  } catch (err) {
    options.onWatchError?.(err);
  }
  const poll = setInterval(() => void check(), pollMs);
  poll.unref();

  return {
    /** The files the agent started from, so that the first event compares against them. */
    initial(texts: readonly ConfigText[]) {
      last = JSON.stringify(texts);
    },
    close() {
      closed = true;
      clearTimeout(settle);
      clearInterval(poll);
      watcher?.close();
    },
  };
}
