import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PluginState } from '../api/services.js';
import type { Logger } from '../observe/logger.js';

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

function checkName(name: string): void {
  if (!FILE_NAME.test(name)) throw new TypeError(`state file name must match ${FILE_NAME.source}, got ${JSON.stringify(name)}`);
}

/** A plugin's private directory under the agent's state directory; `logger` hears of key files made private. */
export function pluginState(stateDir: string, plugin: string, logger?: Logger): PluginState {
  const dir = join(stateDir, 'plugins', plugin);
  return {
    dir,
    async readFile(name, options = {}) {
      checkName(name);
      const path = join(dir, name);
      try {
        if (options.secret) {
          const st = await lstat(path);
          if (!st.isFile()) throw new Error(`${path} holds a key but is not a regular file`);
          if ((st.mode & 0o077) !== 0) {
            await chmod(path, 0o600);
            logger?.warn({ path, mode: `0${(st.mode & 0o777).toString(8)}` }, 'a key file others could read was made private (0600); was it copied or restored without its mode?');
          }
        }
        return await readFile(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return undefined;
        if (code !== undefined) throw new Error(`${path}: ${code === 'EISDIR' ? 'is a directory, not a file' : (err as Error).message}`, { cause: err });
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
    async readFile(name, options) {
      const overlay = written.get(name);
      if (overlay === null) return undefined;
      // A dry run changes no mode: a key file others can read is only read.
      return overlay ?? real.readFile(name, { ...options, secret: false });
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
