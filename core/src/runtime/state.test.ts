import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../observe/logger.js';
import { dryRunState, pluginState } from './state.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'weft-state-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function recordingLogger(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger({ level: 'info', format: 'json' }, sink), lines };
}

describe("a plugin's state directory", () => {
  it('a key file others can read is made 0600, with a warning naming it and its old mode', async () => {
    const { logger, lines } = recordingLogger();
    const state = pluginState(root, 'wg', logger);
    await mkdir(state.dir, { recursive: true });
    await writeFile(join(state.dir, 'private.key'), 'k\n', { mode: 0o644 });
    expect((await state.readFile('private.key', { secret: true }))?.toString()).toBe('k\n');
    expect((await stat(join(state.dir, 'private.key'))).mode & 0o777).toBe(0o600);
    expect(lines).toEqual([expect.objectContaining({ level: 40, path: join(state.dir, 'private.key'), mode: '0644' })]);
    // Private already: read without a word.
    await state.readFile('private.key', { secret: true });
    expect(lines).toHaveLength(1);
  });

  it('a dry run reads such a file without changing its mode', async () => {
    const state = dryRunState(pluginState(root, 'wg'));
    await mkdir(state.dir, { recursive: true });
    await writeFile(join(state.dir, 'private.key'), 'k\n', { mode: 0o644 });
    await state.readFile('private.key', { secret: true });
    expect((await stat(join(state.dir, 'private.key'))).mode & 0o777).toBe(0o644);
  });

  it('a key path that is a directory, or a symbolic link, is an error that names the path', async () => {
    const state = pluginState(root, 'wg');
    await mkdir(join(state.dir, 'private.key'), { recursive: true });
    await expect(state.readFile('private.key', { secret: true })).rejects.toThrow(`${join(state.dir, 'private.key')} holds a key but is not a regular file`);
    await expect(state.readFile('private.key')).rejects.toThrow(`${join(state.dir, 'private.key')}: is a directory, not a file`);
    expect(await state.readFile('absent')).toBeUndefined();
    await writeFile(join(root, 'elsewhere'), 'k\n', { mode: 0o600 });
    await symlink(join(root, 'elsewhere'), join(state.dir, 'link.key'));
    await expect(state.readFile('link.key', { secret: true })).rejects.toThrow(`${join(state.dir, 'link.key')} holds a key but is not a regular file`);
  });
});
