import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshNetns, netnsSkipReason, skipNote } from './support/capabilities.js';
import { httpGet } from '../core/src/observe/http-get.js';
import { until } from './support/until.js';

// docs/plugins.md, followed literally: its files written into an empty directory outside the workspace, its commands
// run there one by one (`@weft/core` from `npm pack`, the plugin built and tested against it), then the plugin run
// by `@weft/core`'s own agent in a network namespace.
const repo = fileURLToPath(new URL('../', import.meta.url));
if (!existsSync(join(repo, 'core/dist/cli/main.js'))) throw new Error('core/dist is missing: run npm run build (npm test does) first');
const guide = await readFile(join(repo, 'docs/plugins.md'), 'utf8');

/** The guide's blocks that carry a title: a file to write, or `commands` to run. */
const blocks = [...guide.matchAll(/^```\w+ title="([^"]+)"\n([\s\S]*?)^```$/gm)].map((m) => ({ title: m[1] as string, body: m[2] as string }));
const files = blocks.filter((b) => b.title !== 'commands');
const commands = (blocks.find((b) => b.title === 'commands')?.body ?? '')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

// npm and npx on the tests' Node 24; packages from npm's cache where it has them (CI's npm ci filled it).
const env = {
  ...process.env,
  PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
  npm_config_prefer_offline: 'true',
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
};

const skip = await netnsSkipReason();

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-out-of-tree-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a plugin outside the workspace, as docs/plugins.md says', () => {
  it('the guide holds the package, the plugin, its test, the config and the commands', () => {
    expect(files.map((f) => f.title).sort()).toEqual(['package.json', 'src/index.test.ts', 'src/index.ts', 'tsconfig.json', 'weft.yaml']);
    expect(commands[0]).toBe('npm pack $WEFT/core');
    expect(commands.length).toBeGreaterThanOrEqual(5);
  });

  it('builds and tests against an npm pack of @weft/core, and the core alone validates a config naming it', { timeout: 300_000 }, async () => {
    for (const f of files) {
      await mkdir(dirname(join(dir, f.title)), { recursive: true });
      await writeFile(join(dir, f.title), f.body);
    }
    for (const line of commands) {
      // No shell: the guide's commands are plain words; $WEFT is this checkout.
      const [program, ...args] = line.split(/\s+/).map((w) => w.replaceAll('$WEFT', repo.replace(/\/$/, '')));
      const r = await execa(program as string, args, { cwd: dir, env, reject: false, all: true, timeout: 240_000 });
      expect(r.exitCode, `${line}\n${r.all ?? ''}`).toBe(0);
      if (line.startsWith('npx weft-core config validate')) expect(r.stdout).toBe('weft.yaml: valid (1 plugin enabled: static-routes)');
      if (line === 'npm test') expect(r.all).toMatch(/1 passed/);
    }
    // What the plugin's package is built from: the tarball, not the workspace.
    const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    expect(pkg.devDependencies['@weft/core']).toBe('file:weft-core-0.1.0.tgz');
    expect(existsSync(join(dir, 'node_modules/@weft/core/src/index.ts'))).toBe(true); // the maps' sources ship
    expect(existsSync(join(dir, 'dist/index.js'))).toBe(true);
  });

  it.skipIf(skip)(`runs in @weft/core's agent: the routes in the kernel, its status, its command${skipNote(skip)}`, { timeout: 60_000 }, async () => {
    expect(existsSync(join(dir, 'dist/index.js')), 'the build of the test before').toBe(true);
    const ns = await freshNetns('oot');
    const socket = '/tmp/weft-static-routes.sock';
    let agent: ResultPromise | undefined;
    try {
      agent = execa('ip', ['netns', 'exec', ns.name, process.execPath, join(dir, 'node_modules/@weft/core/bin/weft.js'), 'run', '--config', 'weft.yaml'], { cwd: dir, env, reject: false, all: true });
      let status: unknown;
      await until(
        'the plugin converged in the agent',
        async () => {
          const r = await httpGet({ socket }, '/api/static-routes/status', 1_000).catch(() => undefined);
          status = r?.status === 200 ? JSON.parse(r.body) : undefined;
          return (status as { converged?: boolean } | undefined)?.converged === true;
        },
        20_000,
      );
      expect(status).toEqual({ converged: true, summary: '1 route' });
      const routes = await execa('ip', ['-n', ns.name, 'route', 'show', 'proto', '190']);
      expect(routes.stdout.trim()).toBe('198.18.200.0/24 dev lo scope link');
      const list = await execa('npx', ['weft-core', 'static-routes', 'list', '--config', 'weft.yaml'], { cwd: dir, env });
      expect(JSON.parse(list.stdout)).toEqual([{ dst: '198.18.200.0/24', dev: 'lo', table: 254 }]);
      const plugins = await execa('npx', ['weft-core', 'plugins', '--config', 'weft.yaml'], { cwd: dir, env });
      expect(plugins.stdout).toMatch(/static-routes\s+\.\/dist\/index\.js\s+enabled in config/);
    } finally {
      agent?.kill('SIGTERM');
      await agent;
      await ns.remove();
    }
    const done = await agent;
    expect(done.exitCode, String(done.all)).toBe(0);
  });
});
