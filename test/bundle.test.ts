import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';

// The bundle (tools/bundle.mjs, part of npm run build) is what the lab's agents and the image run. Copied away from the
// repository, where no node_modules can be found, it must still be the whole CLI with the built-in plugins inside.
const repo = fileURLToPath(new URL('../', import.meta.url));
const bundle = join(repo, 'dist/weft');
const skip = existsSync(join(bundle, 'weft.mjs')) ? undefined : 'dist/weft/weft.mjs is missing: npm run build makes it (npm test does)';
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe.skipIf(skip)(`the bundle, away from the repository${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('knows its version and loads the built-in plugins from inside itself', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-bundle-'));
    dirs.push(dir);
    await cp(bundle, join(dir, 'weft'), { recursive: true });
    const bundled = (...args: string[]) => execa(process.execPath, [join(dir, 'weft', 'weft.mjs'), ...args], { cwd: dir, reject: false });
    // The startup snapshot beside it (what the lab's agents and the image start from): the same answers.
    const snapshot = (...args: string[]) => execa(process.execPath, ['--snapshot-blob', join(dir, 'weft', 'weft.blob'), '--', ...args], { cwd: dir, reject: false });
    for (const weft of [bundled, snapshot]) {
      const { version } = JSON.parse(await readFile(join(repo, 'core/package.json'), 'utf8')) as { version: string };
      expect((await weft('--version')).stdout).toBe(version);
      await writeFile(join(dir, 'weft.yaml'), 'node: {name: n1}\nplugins:\n  wireguard: {granularity: full}\n  keepalive: {}\n');
      const valid = await weft('config', 'validate', join(dir, 'weft.yaml'));
      expect(valid.stderr).toBe('');
      expect(valid.stdout).toBe(`${join(dir, 'weft.yaml')}: valid (2 plugins enabled: wireguard, keepalive)`);
      // A plugin that is not in the bundle is looked for where a config names it, and its absence said.
      await writeFile(join(dir, 'other.yaml'), 'node: {name: n1}\nplugins:\n  hello: {module: "@example/weft-hello"}\n');
      const missing = await weft('config', 'validate', join(dir, 'other.yaml'));
      expect(missing.exitCode).not.toBe(0);
      expect(missing.stderr).toMatch(/cannot import @example\/weft-hello/);
    }
  }, 60_000);
});
