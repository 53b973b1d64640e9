import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The real `weft` binary, as `npx weft` runs it: the built CLI on this Node.
const repo = fileURLToPath(new URL('../', import.meta.url));
const bin = join(repo, 'distribution/bin/weft.js');
if (!existsSync(join(repo, 'core/dist/cli/main.js'))) throw new Error('core/dist is missing: run npm run build (npm test does) before these tests');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-bin-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the weft binary', () => {
  it('config validate exits 2 with file:line:col on a broken file, 0 on a good one', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'plugins:\n  greeter:\n    module: ./nope.js\nlog:\n  level: loud\n');
    const r = await execa(process.execPath, [bin, 'config', 'validate', bad], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^${bad}:3:13 plugins\\.greeter\\.module: plugin "greeter": cannot import \\./nope\\.js: Cannot find module`)),
      `${bad}:5:10 log.level: expected one of trace, debug, info, warn, error, fatal, silent, got "loud"`,
    ]);
    const good = await execa(process.execPath, [bin, 'config', 'validate', join(repo, 'config/examples/single-node.yaml')], { reject: false });
    expect(good.exitCode).toBe(0);
  });

  it('config validate: a plugin module that exits, never finishes loading, or throws a non-Error is exit 2 with file:line:col', async () => {
    const fixture = (name: string) => JSON.stringify(join(repo, 'core/src/runtime/__fixtures__', name));
    const file = join(dir, 'modules.yaml');
    await writeFile(
      file,
      ['plugins:', '  exits:', `    module: ${fixture('exits-on-import.mjs')}`, '  hangs:', `    module: ${fixture('hangs-on-import.mjs')}`, '  throws:', `    module: ${fixture('throws-object-on-import.mjs')}`, ''].join('\n'),
    );
    const started = performance.now();
    const r = await execa(process.execPath, [bin, 'config', 'validate', '--import-timeout', '1500ms', file], { reject: false, timeout: 30_000 });
    expect(r.exitCode, r.stderr).toBe(2);
    expect(performance.now() - started).toBeLessThan(15_000);
    const lines = r.stderr.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${file}:3:13 plugins\\.exits\\.module: plugin "exits": cannot import .*exits-on-import\\.mjs: it called process\\.exit\\(0\\) while being imported$`));
    expect(lines[1]).toMatch(new RegExp(`^${file}:5:13 plugins\\.hangs\\.module: plugin "hangs": cannot import .*hangs-on-import\\.mjs: it did not finish loading within 1500 ms`));
    expect(lines[2]).toMatch(new RegExp(`^${file}:7:13 plugins\\.throws\\.module: plugin "throws": cannot import .*: a non-Error was thrown: \\{"reason":"no licence key","code":42\\}$`));
  });

  it('run serves /healthz, /readyz and /metrics, and exits 0 on SIGTERM', async () => {
    const file = join(dir, 'run.yaml');
    await writeFile(
      file,
      ['node: {name: bin-1, stateDir: ' + join(dir, 'state') + '}', 'http: {listen: "127.0.0.1:0"}', 'log: {level: info, format: json}', 'plugins:', '  node-inventory:', '    module: "@weft-examples/node-inventory"', ''].join('\n'),
    );
    const child = execa(process.execPath, [bin, 'run', '--config', file], { reject: false, all: true });
    let output = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent did not start:\n${output}`)), 15_000);
      child.all?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const m = /"msg":"weft started"/.test(output) ? /"http":\{"host":"127\.0\.0\.1","port":(\d+)\}/.exec(output) : null;
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
    });
    try {
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      let ready = 503;
      for (let i = 0; i < 50 && ready !== 200; i++) {
        ready = (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
        if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready).toBe(200);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^weft_inventory_nodes\{ready="true",plugin="node-inventory"\} 1$/m);
      expect(metrics).toMatch(/^process_resident_memory_bytes \d+/m);
    } finally {
      child.kill('SIGTERM');
    }
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(result.all).toMatch(/"msg":"weft stopped"/);
  });

  it('SIGTERM during start-up (a plugin still setting up): logs it, stops, removes its socket, exits 0', async () => {
    const file = join(dir, 'stuck.yaml');
    const socket = join(dir, 'stuck.sock');
    const fixture = join(repo, 'core/src/runtime/__fixtures__/never-ready.mjs');
    await writeFile(
      file,
      [`node: {name: bin-2, stateDir: ${join(dir, 'state2')}}`, 'http: {listen: "127.0.0.1:0", socket: ' + JSON.stringify(socket) + '}', 'log: {level: info, format: json}', 'plugins:', '  never-ready:', `    module: ${JSON.stringify(fixture)}`, '    setupTimeout: 10m', ''].join('\n'),
    );
    const child = execa(process.execPath, [bin, 'run', '--config', file], { reject: false, all: true });
    let output = '';
    child.all?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    for (let i = 0; i < 150 && !(existsSync(socket) && output.includes('"msg":"weft starting"')); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(socket), output).toBe(true);
    await new Promise((r) => setTimeout(r, 200)); // into the plugin's setup
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode, result.all).toBe(0);
    expect(result.all).toMatch(/"signal":"SIGTERM","duringStartUp":true,"msg":"stopping during start-up"/);
    expect(result.all).toMatch(/"msg":"weft stopped"/);
    expect(existsSync(socket)).toBe(false);
  });
});
