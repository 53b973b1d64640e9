import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { DEFAULT_LAB_ROOT, Lab } from '../core/src/lab/index.js';
import { netnsSkipReason, skipNote } from './support/capabilities.js';
import { labNames } from './support/labs.js';
import './support/builtins.js';
import { until } from './support/until.js';

// `weft lab` for real: namespaces, links, NAT, agents, and a `down` that leaves nothing behind.
const repo = fileURLToPath(new URL('../', import.meta.url));
const bin = join(repo, 'distribution/bin/weft.js');
if (!existsSync(join(repo, 'core/dist/cli/main.js'))) throw new Error('core/dist is missing: run npm run build (npm test does) first');
const skip = await netnsSkipReason();
const labName = labNames();

/** Everything of a lab that could be left behind. */
async function leftovers(name: string) {
  const ns = await execa('ip', ['-j', 'netns', 'list'], { reject: false });
  const namespaces = ns.stdout.trim() ? (JSON.parse(ns.stdout) as { name: string }[]).map((n) => n.name).filter((n) => n.startsWith(`wlab-${name}-`)) : [];
  const dir = join(DEFAULT_LAB_ROOT, name);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`${dir}/`) || l.includes(`${dir} `));
  const processes = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`${dir}/`);
      } catch {
        return false;
      }
    });
  return { namespaces, dir: existsSync(dir), mounts, processes };
}
const nothingLeft = { namespaces: [], dir: false, mounts: [], processes: [] };

/** What `up` could change: namespaces, their links and addresses, the agents, the lab's record. */
async function snapshot(lab: Lab) {
  const out: Record<string, unknown> = {};
  for (const ns of lab.topology.namespaces) {
    const r = await execa('ip', ['-n', ns, '-j', 'addr', 'show']);
    out[ns] = (JSON.parse(r.stdout) as { ifindex: number; ifname: string; addr_info: { local: string }[] }[]).map((l) => `${String(l.ifindex)} ${l.ifname} ${l.addr_info.map((a) => a.local).join(',')}`);
  }
  out.record = readFileSync(join(lab.dir, 'lab.json'), 'utf8');
  out.status = (await lab.status()).nodes.map((n) => `${n.name} ${n.agent} ${String(n.pid)}`);
  return out;
}

const pings = async (lab: Lab, from: string, to: string) => (await lab.exec(from, ['ping', '-c', '1', '-W', '1', to], { timeoutMs: 5_000 })).exitCode === 0;

describe.skipIf(skip)(`weft lab${skipNote(skip)}`, () => {
  it('builds 3 nodes whose agents discover each other; up again changes nothing; agents die and restart; cut and heal; down leaves nothing', async () => {
    const name = labName('a');
    const lab = await Lab.up({ name, nodes: 3, timeoutMs: 30_000 });
    const status = await lab.status();
    expect(status.problems).toEqual([]);
    expect(status.converged).toBe(true);
    expect(status.nodes.map((n) => [n.name, n.underlay, n.podCIDR, n.pod, n.agent, n.ready, n.nodesSeen, n.http])).toEqual([
      ['n1', '198.18.1.11', '198.19.1.0/24', '198.19.1.10', 'running', true, 3, '198.18.1.11:9471'],
      ['n2', '198.18.1.12', '198.19.2.0/24', '198.19.2.10', 'running', true, 3, '198.18.1.12:9471'],
      ['n3', '198.18.1.13', '198.19.3.0/24', '198.19.3.10', 'running', true, 3, '198.18.1.13:9471'],
    ]);
    // The underlay joins every pair; each pod reaches its node; the agent's API answers inside the namespace.
    for (const a of status.nodes) for (const b of status.nodes) if (a !== b) expect(await pings(lab, a.name, b.underlay), `${a.name} → ${b.name}`).toBe(true);
    for (const n of status.nodes) expect(await pings(lab, `${n.name}:pod`, n.podCIDR.replace(/0\/24$/, '1'))).toBe(true);
    const api = await lab.exec('n2', [process.execPath, '-e', `fetch('http://${status.nodes[0]?.http ?? ''}/readyz').then((r) => process.exit(r.status === 200 ? 0 : 1))`]);
    expect(api.exitCode).toBe(0);
    // Each node has its own /run/wireguard (a tmpfs in its own mount namespace); the machine's is untouched.
    const mounts = await lab.exec('n1', ['grep', ' /run/wireguard ', '/proc/self/mountinfo']);
    expect(mounts.stdout).toContain(`wlab-${name}-n1`);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(` - tmpfs wlab-${name}-n1 `);

    const before = await snapshot(lab);
    const again = await Lab.up({ name, nodes: 3, timeoutMs: 30_000 });
    expect(await snapshot(again)).toEqual(before);
    await expect(Lab.up({ name, nodes: 4 })).rejects.toThrow(`lab "${name}" is already up with --nodes 3 --locations 1; run "weft lab down --name ${name}" first`);

    // An agent killed -9 is reported dead and not restarted; startAgent brings it back into the same namespaces.
    const pid = status.nodes[1]?.pid;
    await lab.killAgent('n2');
    const dead = await lab.status();
    expect(dead.nodes[1]?.agent).toBe('dead');
    expect(dead.problems).toEqual([`n2: agent is not running (weft lab logs n2)`]);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await lab.status()).nodes[1]?.agent).toBe('dead');
    const restarted = await lab.startAgent('n2');
    expect(restarted).not.toBe(pid);
    expect((await lab.waitConverged(20_000)).converged).toBe(true);
    const n2log = readFileSync(lab.logFile('n2'), 'utf8');
    expect(n2log.match(/"msg":"weft started"/g)).toHaveLength(2);
    // Each start settled once ready: TurboFan off and the memory reducer on (runtime/run.ts); no compile cache, as
    // the snapshot the lab's agents start from compiles nothing through Node's module loader.
    const settled = n2log
      .split('\n')
      .filter((l) => l.includes('"msg":"settled after the start"'))
      .map((l) => JSON.parse(l) as { compileCache: string | null; turbofan: boolean; memoryReducer: boolean });
    expect(settled).toHaveLength(2);
    for (const s of settled) {
      expect(s.compileCache).toBeNull();
      expect(s.turbofan).toBe(false);
      expect(s.memoryReducer).toBe(true);
    }

    // cut: only that pair loses the underlay; heal restores it.
    await lab.cut('n1', 'n2');
    expect(await pings(lab, 'n1', '198.18.1.12')).toBe(false);
    expect(await pings(lab, 'n2', '198.18.1.11')).toBe(false);
    expect(await pings(lab, 'n1', '198.18.1.13')).toBe(true);
    expect(await pings(lab, 'n2', '198.18.1.13')).toBe(true);
    await lab.heal('n2', 'n1');
    expect(await pings(lab, 'n1', '198.18.1.12')).toBe(true);

    await lab.down();
    expect(await leftovers(name)).toEqual(nothingLeft);
    await lab.down(); // idempotent
  });

  it('two locations, the second behind NAT: its nodes reach out, nothing reaches in; down after kill -9 of every agent', async () => {
    const name = labName('b');
    const lab = await Lab.up({ name, nodes: 4, locations: 2, nat: true, timeoutMs: 30_000 });
    const s = await lab.status();
    expect(s.converged).toBe(true);
    expect(s.nodes.map((n) => [n.name, n.location, n.underlay, n.natAddress])).toEqual([
      ['n1', 'loc1', '198.18.1.11', null],
      ['n2', 'loc1', '198.18.1.12', null],
      ['n3', 'loc2', '198.18.2.13', '203.0.113.10'],
      ['n4', 'loc2', '198.18.2.14', '203.0.113.10'],
    ]);
    expect(await pings(lab, 'n3', '198.18.1.11')).toBe(true); // out through the NAT router
    expect(await pings(lab, 'n3', '198.18.2.14')).toBe(true); // same location, same switch
    expect(await pings(lab, 'n1', '198.18.2.13')).toBe(false); // no way in
    expect(await pings(lab, 'n1', '203.0.113.10')).toBe(true); // the NAT router's public side answers
    for (const n of s.nodes) await lab.killAgent(n.name, 'SIGKILL');
    expect((await lab.status()).nodes.every((n) => n.agent === 'dead')).toBe(true);
    await Lab.down(name);
    expect(await leftovers(name)).toEqual(nothingLeft);
  });

  it('an up interrupted halfway: down removes what it left, and up builds the lab again', async () => {
    const name = labName('c');
    const child = execa(process.execPath, [bin, 'lab', 'up', '--name', name, '--nodes', '6'], { reject: false });
    await until('some namespaces exist', async () => (await leftovers(name)).namespaces.length >= 3, 20_000);
    child.kill('SIGKILL');
    await child;
    expect((await leftovers(name)).namespaces.length).toBeGreaterThan(0);
    const down = await execa(process.execPath, [bin, 'lab', 'down', '--name', name], { reject: false });
    expect(down.exitCode).toBe(0);
    expect(down.stdout).toMatch(new RegExp(`^lab "${name}": removed \\d+ namespaces and \\d+ processes$`));
    expect(await leftovers(name)).toEqual(nothingLeft);

    // Interrupted again, then up straight away: it clears the remains and converges.
    const second = execa(process.execPath, [bin, 'lab', 'up', '--name', name, '--nodes', '2'], { reject: false });
    await until('some namespaces exist', async () => (await leftovers(name)).namespaces.length >= 2, 20_000);
    second.kill('SIGKILL');
    await second;
    const up = await execa(process.execPath, [bin, 'lab', 'up', '--name', name, '--nodes', '2'], { reject: false });
    expect(up.stderr).toBe('');
    expect(up.exitCode).toBe(0);
    expect(up.stdout).toContain(`lab "${name}": 2 nodes, 1 location · discovery directory, resync 5s, directory rescan 2s · converged`);
    const status = JSON.parse((await execa(process.execPath, [bin, 'lab', 'status', '--json', '--name', name])).stdout) as { nodes: { name: string; agent: string; pod: string; http: string; underlay: string; podCIDR: string; plugins: object }[] };
    expect(status.nodes.map((n) => Object.keys(n))).toEqual([expect.arrayContaining(['name', 'underlay', 'podCIDR', 'pod', 'agent', 'http', 'plugins']), expect.anything()]);
    const exec = await execa(process.execPath, [bin, 'lab', 'exec', '--name', name, 'n1:pod', '--', 'ip', '-4', '-br', 'addr', 'show', 'eth0'], { reject: false });
    expect(exec.stdout.trim()).toMatch(/^eth0@\S+\s+UP\s+198\.19\.1\.10\/24$/);
    const failing = await execa(process.execPath, [bin, 'lab', 'exec', '--name', name, 'n1', '--', 'false'], { reject: false });
    expect(failing.exitCode).toBe(1);
    const logs = await execa(process.execPath, [bin, 'lab', 'logs', '--name', name, 'n2']);
    expect(logs.stdout).toContain('"msg":"weft started"');
    // --follow prints what is appended: a restarted agent's start.
    let followed = '';
    const follow = execa(process.execPath, [bin, 'lab', 'logs', '--follow', '--name', name, 'n2'], { reject: false });
    follow.stdout?.on('data', (c: Buffer) => (followed += c.toString()));
    const lab = Lab.attach(name);
    await until('the log printed', () => followed.includes('"msg":"weft started"'));
    await lab.killAgent('n2');
    await lab.startAgent('n2');
    await until('the new start followed', () => (followed.match(/"msg":"weft started"/g) ?? []).length === 2, 15_000);
    follow.kill('SIGTERM');
    await follow;
    await execa(process.execPath, [bin, 'lab', 'down', '--name', name]);
    expect(await leftovers(name)).toEqual(nothingLeft);
  });

  it("the README's first command (npm start) brings up the default lab's shape, and every command of its closing hint works", async () => {
    const name = labName('q');
    const r = await execa(process.execPath, [join(repo, 'tools/quickstart.mjs'), '--name', name, '--nodes', '2'], { reject: false, cwd: repo, timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('weft quickstart: building');
    expect(r.stdout).toContain(`lab "${name}": 2 nodes, 1 location · discovery directory, resync 5s, directory rescan 2s · converged`);
    // The hint, as a user copies it: one command per line, a comment after `#`.
    const hint = r.stdout
      .slice(r.stdout.indexOf('weft quickstart: the lab is up. Try:\n'))
      .split('\n')
      .slice(1)
      .map((l) => l.replace(/\s+#.*$/, '').trim())
      .filter((l) => l !== '');
    expect(hint).toEqual([
      `npx weft lab status --name ${name}`,
      `npx weft lab exec --name ${name} n1:pod -- ping -c1 198.19.2.10`,
      `npx weft lab exec --name ${name} n1 -- wg show`,
      `npx weft lab exec --name ${name} n1 -- curl -s http://198.18.1.11:9471/readyz`,
      `npx weft lab logs --name ${name} n1`,
      `npx weft lab down --name ${name}`,
    ]);
    for (const line of hint) {
      const [cmd, ...args] = line.split(/\s+/) as [string, ...string[]];
      const run = await execa(cmd, args, { reject: false, cwd: repo, timeout: 60_000 });
      expect(run.exitCode, `${line}\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-2000)}`).toBe(0);
      if (line.includes('-- wg show')) expect(run.stdout).toMatch(/^interface: weft-wg0$/m);
      if (line.includes('/readyz')) expect(run.stdout).toMatch(/"ready": *true/);
    }
    expect(await leftovers(name)).toEqual(nothingLeft);
  });
});
