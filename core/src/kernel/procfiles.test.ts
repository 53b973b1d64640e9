import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROC_FILES_MAX, ProcFiles } from './procfiles.js';

describe('ProcFiles', () => {
  const files = new ProcFiles();
  afterEach(() => files.close());

  it('reads what a file holds now, through one kept descriptor', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-proc-'));
    try {
      const f = join(dir, 'forwarding');
      await writeFile(f, '0\n');
      expect(files.read(f)).toBe('0\n');
      await writeFile(f, '1\n');
      expect(files.read(f)).toBe('1\n');
      const long = 'x'.repeat(10_000);
      await writeFile(f, long);
      expect(files.read(f)).toBe(long);
      expect(files.read(join(dir, 'missing'))).toBeUndefined();
      // More files than it keeps: it lets the old ones go and reads on.
      for (let i = 0; i <= PROC_FILES_MAX; i++) await writeFile(join(dir, `f${String(i)}`), String(i));
      for (let i = 0; i <= PROC_FILES_MAX; i++) expect(files.read(join(dir, `f${String(i)}`))).toBe(String(i));
      expect(files.read(f)).toBe(long);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads /proc, and a file that went away is missing, not its last value', async () => {
    expect(files.read('/proc/sys/kernel/ostype')).toBe('Linux\n');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => undefined, 30_000)'], { stdio: 'ignore' });
    const comm = `/proc/${String(child.pid)}/comm`;
    expect(files.read(`/proc/${String(child.pid)}/cmdline`)).toContain('setTimeout');
    expect(files.read(comm)).toMatch(/\S\n$/);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    // The process is reaped: its /proc entry is gone, though this descriptor was opened before.
    await new Promise((r) => setTimeout(r, 50));
    expect(files.read(comm)).toBeUndefined();
  });
});
