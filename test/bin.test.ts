import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../core/src/testing/fake-apiserver.js';

// The real `weft`, both ways it starts: the binary as `npx weft` runs it (the built CLI on this Node), and the
// agent's startup snapshot as the lab and the container image run it (`node --snapshot-blob dist/weft/weft.blob`).
const repo = fileURLToPath(new URL('../', import.meta.url));
const bin = join(repo, 'distribution/bin/weft.js');
const blob = join(repo, 'dist/weft/weft.blob');
if (!existsSync(join(repo, 'core/dist/cli/main.js')) || !existsSync(blob)) throw new Error('core/dist or dist/weft/weft.blob is missing: run npm run build (npm test does) before these tests');
const launchers = [
  { how: 'the binary', args: [bin] },
  { how: 'the startup snapshot', args: ['--snapshot-blob', blob] },
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-bin-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each(launchers)('weft, started from $how', ({ args: launch }) => {
  it('config validate exits 2 with file:line:col on a broken file, 0 on a good one', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'plugins:\n  greeter:\n    module: ./nope.js\nlog:\n  level: loud\n');
    const r = await execa(process.execPath, [...launch, 'config', 'validate', bad], { reject: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.split("\n")).toEqual([
      expect.stringMatching(new RegExp(`^${bad}:3:13 plugins\\.greeter\\.module: plugin "greeter": cannot import \\./nope\\.js: Cannot find module`)),
      `${bad}:5:10 log.level: expected one of trace, debug, info, warn, error, fatal, silent, got "loud"`,
    ]);
    const good = await execa(process.execPath, [...launch, 'config', 'validate', join(repo, 'config/examples/single-node.yaml')], { reject: false });
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
    const r = await execa(process.execPath, [...launch, 'config', 'validate', '--import-timeout', '1500ms', file], { reject: false, timeout: 30_000 });
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
    const cache = join(dir, `compile-cache-${String(launchers.findIndex((l) => l.args === launch))}`);
    const child = execa(process.execPath, [...launch, 'run', '--config', file], { reject: false, all: true, env: { NODE_COMPILE_CACHE: cache } });
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
      // Node's compile cache, written once the agent is ready (not at an exit a DaemonSet's agent seldom has): from
      // the binary, the next start compiles little. The snapshot's code is not compiled through the module loader.
      if (launch[0] === bin) {
        for (let i = 0; i < 50 && !output.includes('"msg":"settled after the start"'); i++) await new Promise((r) => setTimeout(r, 100));
        expect(readdirSync(cache, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length, output).toBeGreaterThan(5);
      }
    } finally {
      child.kill('SIGTERM');
    }
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(result.all).toMatch(/"msg":"weft stopped"/);
  });

  it('a kubeconfig that needs the full Kubernetes client (an exec credential plugin): discovers the nodes through it', async () => {
    const server = await startFakeApiServer();
    try {
      server.put('nodes', { metadata: { name: 'kc-1' } });
      server.put('nodes', { metadata: { name: 'kc-2' } });
      const token = /token: ([^}\s]+)/.exec(server.kubeconfig())?.[1] ?? '';
      await writeFile(join(dir, 'cred.mjs'), `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: ${JSON.stringify(token)} } }));`);
      const exec = `{command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(join(dir, 'cred.mjs'))}], apiVersion: client.authentication.k8s.io/v1, interactiveMode: Never}`;
      const kubeconfig = join(dir, 'kc');
      await writeFile(kubeconfig, ['apiVersion: v1', 'kind: Config', `clusters: [{name: c, cluster: {server: ${server.url}, insecure-skip-tls-verify: true}}]`, `users: [{name: u, user: {exec: ${exec}}}]`, 'contexts: [{name: x, context: {cluster: c, user: u}}]', 'current-context: x', ''].join('\n'));
      const file = join(dir, 'kc.yaml');
      await writeFile(
        file,
        [`node: {name: kc-1, stateDir: ${join(dir, 'state-kc')}}`, 'http: {listen: "127.0.0.1:0"}', 'log: {level: debug, format: json}', `discovery: {source: kubernetes, kubernetes: {kubeconfig: ${JSON.stringify(kubeconfig)}}}`, 'plugins:', '  node-inventory:', '    module: "@weft-examples/node-inventory"', ''].join('\n'),
      );
      const child = execa(process.execPath, [...launch, 'run', '--config', file], { reject: false, all: true });
      let output = '';
      child.all?.on('data', (chunk: Buffer) => (output += chunk.toString()));
      try {
        let port = 0;
        for (let i = 0; i < 150 && port === 0; i++) {
          port = Number(/"msg":"weft started"/.test(output) ? (/"http":\{"host":"127\.0\.0\.1","port":(\d+)\}/.exec(output)?.[1] ?? 0) : 0);
          if (port === 0) await new Promise((r) => setTimeout(r, 100));
        }
        expect(port, output).toBeGreaterThan(0);
        let nodes = '';
        for (let i = 0; i < 100 && !nodes.includes('kc-2'); i++) {
          nodes = await (await fetch(`http://127.0.0.1:${port}/api/node-inventory/nodes`)).text();
          if (!nodes.includes('kc-2')) await new Promise((r) => setTimeout(r, 100));
        }
        expect(nodes, output).toContain('kc-2');
        expect(output).toContain(`"credentials":"(full client) ${kubeconfig}"`);
      } finally {
        child.kill('SIGTERM');
      }
      expect((await child).exitCode, output).toBe(0);
    } finally {
      await server.close();
    }
  });

  it('SIGTERM during start-up (a plugin still setting up): logs it, stops, removes its socket, exits 0', async () => {
    const file = join(dir, 'stuck.yaml');
    const socket = join(dir, 'stuck.sock');
    const fixture = join(repo, 'core/src/runtime/__fixtures__/never-ready.mjs');
    await writeFile(
      file,
      [`node: {name: bin-2, stateDir: ${join(dir, 'state2')}}`, 'http: {listen: "127.0.0.1:0", socket: ' + JSON.stringify(socket) + '}', 'log: {level: info, format: json}', 'plugins:', '  never-ready:', `    module: ${JSON.stringify(fixture)}`, '    setupTimeout: 10m', ''].join('\n'),
    );
    const child = execa(process.execPath, [...launch, 'run', '--config', file], { reject: false, all: true });
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
