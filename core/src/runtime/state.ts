import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PluginState } from '../api/services.js';

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkName(name: string): void {
  if (!FILE_NAME.test(name)) throw new TypeError(`state file name must match ${FILE_NAME.source}, got ${JSON.stringify(name)}`);
}

/** A plugin's private directory under the agent's state directory. */
export function pluginState(stateDir: string, plugin: string): PluginState {
  const dir = join(stateDir, 'plugins', plugin);
  return {
    dir,
    async readFile(name) {
      checkName(name);
      try {
        return await readFile(join(dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async writeFile(name, data, options = {}) {
      checkName(name);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const target = join(dir, name);
      const temp = join(dir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
      try {
        await writeFile(temp, data, { mode: options.mode ?? 0o600, flush: true });
        await rename(temp, target);
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      }
    },
    async removeFile(name) {
      checkName(name);
      await rm(join(dir, name), { force: true });
    },
  };
}

/** A state directory for `weft plan`: reads the real files, keeps writes in memory, so nothing on disk changes. */
export function dryRunState(real: PluginState): PluginState {
  const written = new Map<string, Buffer | null>();
  return {
    dir: real.dir,
    async readFile(name) {
      const overlay = written.get(name);
      if (overlay === null) return undefined;
      return overlay ?? real.readFile(name);
    },
    async writeFile(name, data) {
      checkName(name);
      written.set(name, Buffer.from(data));
      await Promise.resolve();
    },
    async removeFile(name) {
      checkName(name);
      written.set(name, null);
      await Promise.resolve();
    },
  };
}
