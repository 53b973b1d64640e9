import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

/**
 * /proc files read again and again (a steady reconcile reads its sysctls every time) through descriptors kept open:
 * one `pread` each instead of open, stat, read and close. A file that fails (its interface went away) is opened again
 * or reported missing; at most {@link PROC_FILES_MAX} are kept.
 */
export class ProcFiles {
  private readonly fds = new Map<string, number>();
  private readonly buffer = Buffer.allocUnsafe(4096);

  /** The file's text now, or undefined when it cannot be read (it does not exist, or no longer does). */
  read(path: string): string | undefined {
    let fd = this.fds.get(path);
    try {
      if (fd === undefined) {
        if (this.fds.size >= PROC_FILES_MAX) this.close();
        fd = openSync(path, 'r');
        this.fds.set(path, fd);
      }
      const n = readSync(fd, this.buffer, 0, this.buffer.length, 0);
      // A value longer than the buffer (a few sysctls are lists) is read whole.
      return n < this.buffer.length ? this.buffer.toString('utf8', 0, n) : readProcFile(path);
    } catch {
      this.drop(path);
      return readProcFile(path);
    }
  }

  /** Closes every kept descriptor. */
  close(): void {
    for (const path of [...this.fds.keys()]) this.drop(path);
  }

  private drop(path: string): void {
    const fd = this.fds.get(path);
    this.fds.delete(path);
    if (fd === undefined) return;
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}

/** The most /proc files {@link ProcFiles} keeps open. */
export const PROC_FILES_MAX = 64;

/** A /proc file's text, or undefined when it cannot be read. */
export function readProcFile(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
