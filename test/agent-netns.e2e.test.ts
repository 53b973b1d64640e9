import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshNetns, netnsSkipReason, skipNote } from './support/capabilities.js';

// The real binary against a real network namespace: `weft plan` changes nothing, `weft run` converges the
// kernel and leaves it in place on SIGTERM.
const repo = fileURLToPath(new URL('../', import.meta.url));
const bin = join(repo, 'distribution/bin/weft.js');
const fixture = join(repo, 'core/src/runtime/__fixtures__/pod-routes.mjs');
if (!existsSync(join(repo, 'core/dist/cli/main.js'))) throw new Error('core/dist is missing: run npm run build (npm test does) first');
const skip = await netnsSkipReason();

describe.skipIf(skip)(`weft plan and run on a real namespace${skipNote(skip)}`, () => {
  let ns: Awaited<ReturnType<typeof freshNetns>>;
  let dir: string;
  let config: string;
  const kernelState = async () => {
    const links = await execa('ip', ['-n', ns.name, '-d', 'link', 'show']);
    const routes = await execa('ip', ['-n', ns.name, 'route', 'show', 'table', 'all']);
    return `${links.stdout}\n${routes.stdout}`;
  };

  beforeAll(async () => {
    ns = await freshNetns('plan');
    dir = await mkdtemp(join(tmpdir(), 'weft-plan-'));
    config = join(dir, 'weft.yaml');
    await writeFile(
      config,
      [
        'node: {name: n1, stateDir: ' + join(dir, 'state') + '}',
        `kernel: {netns: ${ns.name}}`,
        'discovery:',
        '  static:',
        '    nodes:',
        '      - {name: n1, podCIDRs: [198.18.1.0/24]}',
        '      - {name: n2, podCIDRs: [198.18.2.0/24, "2001:db8:2::/64"]}',
        'http: {listen: "127.0.0.1:0"}',
        'log: {format: json}',
        'plugins:',
        `  pod-routes: {module: ${fixture}}`,
        '',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    await ns?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('plan prints the changes and leaves the kernel as it was', async () => {
    const before = await kernelState();
    const r = await execa(process.execPath, [bin, 'plan', '--config', config], { reject: false });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(
      ['pod-routes: 3 changes', '  + link wpr0', '  + route 198.18.2.0/24 table 254 metric 0', '  + route 2001:db8:2::/64 table 254 metric 1024'].join('\n'),
    );
    expect(await kernelState()).toBe(before);
  });

  it('run converges the kernel, and SIGTERM leaves the data plane in place', async () => {
    const child = execa(process.execPath, [bin, 'run', '--config', config], { reject: false, all: true });
    try {
      let routes = '';
      for (let i = 0; i < 100 && !routes.includes('2001:db8:2::/64'); i++) {
        await new Promise((r) => setTimeout(r, 100));
        routes = (await execa('ip', ['-n', ns.name, 'route', 'show', 'table', 'all', 'proto', '199'])).stdout;
      }
      expect(routes).toMatch(/198\.18\.2\.0\/24 dev wpr0/);
      expect(routes).toMatch(/2001:db8:2::\/64 dev wpr0/);
    } finally {
      child.kill('SIGTERM');
    }
    const result = await child;
    expect(result.exitCode).toBe(0);
    const after = (await execa('ip', ['-n', ns.name, 'route', 'show', 'table', 'all', 'proto', '199'])).stdout;
    expect(after).toMatch(/198\.18\.2\.0\/24 dev wpr0/);
    const plan = await execa(process.execPath, [bin, 'plan', '--config', config]);
    expect(plan.stdout).toBe('pod-routes: no changes');
  });
});
