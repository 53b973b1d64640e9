import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Lab, type LabStatus } from '../core/src/lab/index.js';
import { netnsSkipReason, skipNote } from './support/capabilities.js';
import { labNames } from './support/labs.js';
import './support/builtins.js';
import { until } from './support/until.js';

// The WireGuard mesh for real: wireguard-go in the lab's namespaces, pods pinging pods through it.
const repo = fileURLToPath(new URL('../', import.meta.url));
if (!existsSync(join(repo, 'core/dist/cli/main.js'))) throw new Error('core/dist is missing: run npm run build (npm test does) first');
const skip = await netnsSkipReason();
const name = labNames();

const podOf = (s: LabStatus, node: string) => s.nodes.find((n) => n.name === node)?.pod as string;
const ping = async (lab: Lab, from: string, to: string, count = 1) => {
  const r = await lab.exec(from, ['ping', '-c', String(count), '-W', '1', to], { timeoutMs: 10_000 + count * 1000 });
  return r.exitCode === 0;
};
/** Pings in a burst (every 100 ms) and counts the replies. */
const pingBurst = async (lab: Lab, from: string, to: string, count: number) => {
  const r = await lab.exec(from, ['ping', '-i', '0.1', '-c', String(count), '-W', '1', to], { timeoutMs: 30_000 + count * 200 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), output: r.stdout };
};
/** The peers' public keys a node's device has, with their latest handshake (unix seconds). */
const handshakes = async (lab: Lab, node: string) => {
  const r = await lab.exec(node, ['wg', 'show', 'weft-wg0', 'latest-handshakes']);
  return Object.fromEntries(r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => l.split('\t') as [string, string]).map(([k, t]) => [k, Number(t)]));
};
const publicKeyOf = async (lab: Lab, node: string) => (await lab.exec(node, ['wg', 'show', 'weft-wg0', 'public-key'])).stdout.trim();
/** Every pod reaches every other pod (retrying while the mesh comes up). */
const allPodsPing = async (lab: Lab, s: LabStatus, timeoutMs = 30_000) => {
  for (const a of s.nodes) {
    for (const b of s.nodes) {
      if (a === b) continue;
      await until(`${a.name}:pod → ${b.name}'s pod`, () => ping(lab, `${a.name}:pod`, b.pod), timeoutMs);
    }
  }
};

describe.skipIf(skip)(`the WireGuard mesh in the lab${skipNote(skip)}`, () => {
  it('3 nodes, full mesh: every pod pings every other, handshakes on every pair; a peer removed by hand comes back; kill -9 and restart lose no ping and keep the key', async () => {
    const lab = await Lab.up({ name: name('wa'), nodes: 3, timeoutMs: 30_000 });
    const s = await lab.status();
    expect(s.problems).toEqual([]);
    await allPodsPing(lab, s);
    const keys = Object.fromEntries(await Promise.all(s.nodes.map(async (n) => [n.name, await publicKeyOf(lab, n.name)] as const)));
    for (const n of s.nodes) {
      const hs = await handshakes(lab, n.name);
      const others = s.nodes.filter((o) => o !== n).map((o) => keys[o.name] as string);
      expect(Object.keys(hs).sort(), n.name).toEqual([...others].sort());
      for (const k of others) expect(hs[k], `${n.name} ↔ ${k}`).toBeGreaterThan(0);
    }

    // A peer removed by hand is back within the heartbeat (5 s in the lab).
    const removedAt = Date.now();
    expect((await lab.exec('n1', ['wg', 'set', 'weft-wg0', 'peer', keys.n2 as string, 'remove'])).exitCode).toBe(0);
    expect(Object.keys(await handshakes(lab, 'n1'))).not.toContain(keys.n2);
    await until('the peer back', async () => Object.keys(await handshakes(lab, 'n1')).includes(keys.n2 as string), 15_000);
    expect(Date.now() - removedAt).toBeLessThan(12_000);
    await until('n1:pod → n2 again', () => ping(lab, 'n1:pod', podOf(s, 'n2')), 10_000);

    // The agent killed -9 and started again while pods ping: not one ping lost, the same key.
    const burst = pingBurst(lab, 'n1:pod', podOf(s, 'n2'), 60);
    await new Promise((r) => setTimeout(r, 1000));
    await lab.killAgent('n1', 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    await lab.startAgent('n1');
    expect((await lab.waitConverged(30_000)).problems).toEqual([]);
    const result = await burst;
    expect(result.received, result.output).toBe(result.sent);
    expect(await publicKeyOf(lab, 'n1')).toBe(keys.n1);
    await lab.down();
  });

  it('a node joins and another leaves while two other pods ping: not one ping lost; the one that left is gone from every peer', async () => {
    const lab = await Lab.up({ name: name('wb'), nodes: 4, timeoutMs: 30_000 });
    const s = await lab.status();
    const n3key = await publicKeyOf(lab, 'n3');
    const n4key = await publicKeyOf(lab, 'n4');
    await lab.leave('n4');
    await until('n4 dropped by the others', async () => {
      for (const n of ['n1', 'n2', 'n3']) if (Object.keys(await handshakes(lab, n)).includes(n4key)) return false;
      return true;
    }, 20_000);
    await until('n1:pod → n2:pod', () => ping(lab, 'n1:pod', podOf(s, 'n2')), 20_000);

    const burst = pingBurst(lab, 'n1:pod', podOf(s, 'n2'), 100);
    await new Promise((r) => setTimeout(r, 1500));
    await lab.startAgent('n4'); // joins
    await new Promise((r) => setTimeout(r, 2500));
    await lab.leave('n3'); // leaves
    const result = await burst;
    expect(result.received, result.output).toBe(result.sent);

    await until('n3 gone from every peer, n4 back', async () => {
      for (const n of ['n1', 'n2', 'n4']) {
        const peers = Object.keys(await handshakes(lab, n));
        if (peers.includes(n3key)) return false;
        if (n !== 'n4' && !peers.includes(n4key)) return false;
      }
      return true;
    }, 20_000);
    await until('n4:pod → n1:pod', () => ping(lab, 'n4:pod', podOf(s, 'n1')), 20_000);
    await lab.down();
  });

  it('2 locations, the second behind NAT (full mesh): pods reach each other across locations both ways', async () => {
    const lab = await Lab.up({ name: name('wc'), nodes: 4, locations: 2, nat: true, timeoutMs: 30_000 });
    const s = await lab.status();
    expect(s.nodes.map((n) => n.natAddress)).toEqual([null, null, '203.0.113.10', '203.0.113.10']);
    // n3 and n4 have no address the first location can reach: their keepalives open the way.
    await allPodsPing(lab, s, 40_000);
    // n1 talks to n3 at the NAT router's address it saw, not at n3's private one.
    const n3key = await publicKeyOf(lab, 'n3');
    const endpoints = (await lab.exec('n1', ['wg', 'show', 'weft-wg0', 'endpoints'])).stdout;
    expect(endpoints).toMatch(new RegExp(`${n3key.replace(/[+/]/g, (c) => `\\${c}`)}\\t203\\.0\\.113\\.10:\\d+`));
    await lab.down();
  });

  it('NAT to NAT: two nodes each behind its own NAT reach each other through what a third node saw of them', async () => {
    const lab = await Lab.up({ name: name('we'), nodes: 3, locations: 3, nat: true, timeoutMs: 30_000 });
    const s = await lab.status();
    expect(s.nodes.map((n) => [n.name, n.natAddress])).toEqual([['n1', null], ['n2', '203.0.113.10'], ['n3', '203.0.113.14']]);
    await until("n2's pod → n3's pod", () => ping(lab, 'n2:pod', podOf(s, 'n3')), 60_000);
    await until("n3's pod → n2's pod", () => ping(lab, 'n3:pod', podOf(s, 'n2')), 30_000);
    const n3key = await publicKeyOf(lab, 'n3');
    const endpoints = (await lab.exec('n2', ['wg', 'show', 'weft-wg0', 'endpoints'])).stdout;
    expect(endpoints).toContain(`${n3key}\t203.0.113.14:`);
    await lab.down();
  });

  it('2 locations behind NAT with granularity location: leaders carry the traffic, pods of non-leaders reach each other', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-wg-lab-'));
    try {
      const config = join(dir, 'lab.yaml');
      await writeFile(config, 'plugins:\n  wireguard:\n    granularity: location\n    heartbeat: 5s\n');
      const lab = await Lab.up({ name: name('wd'), nodes: 4, locations: 2, nat: true, config, timeoutMs: 30_000 });
      const s = await lab.status();
      const wg = (node: string) => s.nodes.find((n) => n.name === node)?.plugins.wireguard as unknown as { isLeader: boolean; leaders: Record<string, string>; peers: { name: string }[] };
      expect(wg('n1').leaders).toEqual({ loc1: 'n1', loc2: 'n3' });
      expect([wg('n1').isLeader, wg('n2').isLeader, wg('n3').isLeader, wg('n4').isLeader]).toEqual([true, false, true, false]);
      expect(wg('n2').peers).toEqual([]);
      expect(wg('n1').peers.map((p) => p.name)).toEqual(['n3']);
      // n2 → n1 (underlay) → n3 (WireGuard, through the NAT) → n4 (underlay), and back.
      await until("n2's pod → n4's pod", () => ping(lab, 'n2:pod', podOf(s, 'n4')), 40_000);
      await allPodsPing(lab, s, 40_000);
      // No heartbeat by location either: once the facts are out (the leaders publish the NAT endpoints they saw at
      // the heartbeat after their first handshake), no node rewrites its document over more than two heartbeats.
      const docs = () => ['n1', 'n2', 'n3', 'n4'].map((n) => `${n}@${String(statSync(join(lab.dir, 'nodes', `${n}.yaml`)).mtimeMs)}: ${readFileSync(join(lab.dir, 'nodes', `${n}.yaml`), 'utf8')}`);
      let before = docs();
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, 6_000));
        const now = docs();
        if (JSON.stringify(now) === JSON.stringify(before)) break;
        before = now;
      }
      await new Promise((r) => setTimeout(r, 12_000));
      expect(docs()).toEqual(before);
      await lab.down();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
