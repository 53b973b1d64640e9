import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { httpGet } from '../core/src/observe/http-get.js';
import { Lab, type LabStatus } from '../core/src/lab/index.js';
import { netnsSkipReason, skipNote } from './support/capabilities.js';
import { labNames } from './support/labs.js';
import './support/builtins.js';
import { until } from './support/until.js';

// The vxlan plugin for real, on this machine's kernel (vxlan and bridge): the overlay between two locations, the
// segments, and a segment carried inside the WireGuard mesh.
const repo = fileURLToPath(new URL('../', import.meta.url));
if (!existsSync(join(repo, 'core/dist/cli/main.js'))) throw new Error('core/dist is missing: run npm run build (npm test does) first');
const skip = await netnsSkipReason();
const name = labNames();

const dir = await mkdtemp(join(tmpdir(), 'weft-vxlan-lab-'));
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
const configFile = async (file: string, text: string) => {
  const path = join(dir, file);
  await writeFile(path, text);
  return path;
};

const api = async (lab: Lab, node: string, path: string) => (await httpGet({ socket: join(lab.dir, node, 'http.sock') }, path, 5_000)).body;
const ping = async (lab: Lab, from: string, to: string) => (await lab.exec(from, ['ping', '-c', '1', '-W', '1', to], { timeoutMs: 10_000 })).exitCode === 0;
const podOf = (s: LabStatus, node: string) => s.nodes.find((n) => n.name === node)?.pod as string;
/** Pings every 100 ms and counts the replies. */
const pingBurst = async (lab: Lab, from: string, to: string, count: number) => {
  const r = await lab.exec(from, ['ping', '-i', '0.1', '-c', String(count), '-W', '1', to], { timeoutMs: 30_000 + count * 200 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0), output: r.stdout };
};
/** What tcpdump sees on a node's underlay (eth0) while `during` runs: one line per packet. */
const capture = async (lab: Lab, node: string, filter: string[], during: () => Promise<unknown>) => {
  const dump = lab.exec(node, ['timeout', '6', 'tcpdump', '-n', '-l', '-i', 'eth0', ...filter], { timeoutMs: 15_000 });
  await new Promise((r) => setTimeout(r, 1_500)); // tcpdump is listening
  await during();
  const r = await dump;
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
};
/** The kernel changes an agent made, by its metrics (all owners and kinds summed). */
const kernelChanges = async (lab: Lab, node: string) => {
  const text = await api(lab, node, '/metrics');
  let sum = 0;
  for (const m of text.matchAll(/^weft_kernel_changes_total\{[^}]*owner="vxlan"[^}]*\} (\d+)$/gm)) sum += Number(m[1]);
  return sum;
};
/** Who answers an all-nodes ping on a segment's interface: their link-local addresses, deduplicated. */
const allNodes = async (lab: Lab, node: string, dev: string) => {
  const r = await lab.exec(node, ['ping', '-6', '-c', '3', '-i', '0.3', '-W', '1', `ff02::1%${dev}`], { timeoutMs: 15_000 });
  const from = [...r.stdout.matchAll(/from (fe80::[0-9a-f:]+)%/g)].map((m) => m[1] as string);
  return new Set(from);
};
const linkLocal = async (lab: Lab, node: string, dev: string) => {
  const r = await lab.exec(node, ['ip', '-6', '-o', 'addr', 'show', 'dev', dev, 'scope', 'link']);
  return /inet6 (fe80::[0-9a-f:]+)\//.exec(r.stdout)?.[1];
};

describe.skipIf(skip)(`the vxlan plugin in the lab${skipNote(skip)}`, () => {
  it('overlay, 3 nodes in 2 locations: pods reach pods; VXLAN only between locations; kill -9 loses no ping and writes nothing; drift and a leaving node are repaired', async () => {
    const config = await configFile('overlay.yaml', 'plugins:\n  vxlan: {}\n');
    const lab = await Lab.up({ name: name('vo'), nodes: 3, locations: 2, config, timeoutMs: 60_000 });
    const s = await lab.status();
    expect(s.problems).toEqual([]);
    expect(s.nodes.map((n) => n.location)).toEqual(['loc1', 'loc1', 'loc2']);
    for (const a of s.nodes) for (const b of s.nodes) if (a !== b) await until(`${a.name}:pod → ${b.name}'s pod`, () => ping(lab, `${a.name}:pod`, b.pod), 20_000);

    // The paths: n2 is on n1's subnet (direct), n3 in the other location (encapsulated).
    const status = JSON.parse(await api(lab, 'n1', '/api/vxlan/status')) as { overlay: { peers: { name: string; path: string }[]; mtu: number } };
    expect(status.overlay.peers.map((p) => [p.name, p.path])).toEqual([
      ['n2', 'direct'],
      ['n3', 'encapsulated'],
    ]);
    expect(status.overlay.mtu).toBe(1450);
    const seen = await capture(lab, 'n1', ['udp', 'port', '4789', 'or', 'icmp'], async () => {
      await ping(lab, 'n1:pod', podOf(s, 'n2'));
      await ping(lab, 'n1:pod', podOf(s, 'n3'));
    });
    const vxlan = seen.filter((l) => /\.4789: VXLAN/.test(l) || /\.4789 /.test(l));
    expect(vxlan.length, seen.join('\n')).toBeGreaterThanOrEqual(2);
    for (const l of vxlan) expect(l, 'VXLAN only with the other location').toMatch(/198\.18\.1\.11\.\d+ > 198\.18\.2\.13\.4789|198\.18\.2\.13\.\d+ > 198\.18\.1\.11\.4789/);
    // Inside the location the pods' packets go plain over the underlay.
    expect(seen.some((l) => /^\S+ IP 198\.19\.1\.10 > 198\.19\.2\.10: ICMP echo request/.test(l)), seen.join('\n')).toBe(true);

    // kill -9 and a restart during a 10/s ping across locations: not one lost, not one kernel write after it.
    const burst = pingBurst(lab, 'n1:pod', podOf(s, 'n3'), 50);
    await new Promise((r) => setTimeout(r, 1000));
    await lab.killAgent('n1', 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    await lab.startAgent('n1');
    expect((await lab.waitConverged(30_000)).problems).toEqual([]);
    const result = await burst;
    expect(result.received, result.output).toBe(result.sent);
    expect(await kernelChanges(lab, 'n1'), (await api(lab, 'n1', '/metrics')).split('\n').filter((l) => l.startsWith('weft_kernel_changes_total')).join('\n')).toBe(0);

    // Drift: n3's FDB entry and neighbour deleted by hand on n1 are back within the resync (5 s in the lab).
    const peers = (JSON.parse(await api(lab, 'n1', '/api/vxlan/status')) as { overlay: { peers: { name: string; mac: string }[] } }).overlay.peers;
    const mac3 = peers.find((p) => p.name === 'n3')?.mac as string;
    expect((await lab.exec('n1', ['bridge', 'fdb', 'del', mac3, 'dev', 'weft-vx0', 'dst', '198.18.2.13'])).exitCode).toBe(0);
    expect((await lab.exec('n1', ['ip', 'neigh', 'del', '198.19.3.0', 'dev', 'weft-vx0'])).exitCode).toBe(0);
    const fdbOf = async (node: string) => (await lab.exec(node, ['bridge', 'fdb', 'show', 'dev', 'weft-vx0'])).stdout;
    const neighOf = async (node: string) => (await lab.exec(node, ['ip', 'neigh', 'show', 'dev', 'weft-vx0'])).stdout;
    await until('the FDB entry back', async () => (await fdbOf('n1')).includes(`${mac3} dst 198.18.2.13`), 12_000);
    await until('the neighbour back', async () => (await neighOf('n1')).includes(`198.19.3.0 lladdr ${mac3}`), 12_000);
    await until('n1:pod → n3 again', () => ping(lab, 'n1:pod', podOf(s, 'n3')), 10_000);

    // n3 leaves the cluster: its entries and routes are gone from n1 and n2.
    await lab.leave('n3');
    for (const node of ['n1', 'n2']) {
      await until(`n3 gone from ${node}`, async () => !(await fdbOf(node)).includes('198.18.2.13') && !(await neighOf(node)).includes('198.19.3.0'), 15_000);
      expect((await lab.exec(node, ['ip', 'route', 'show', '198.19.3.0/24'])).stdout.trim()).toBe('');
    }
    await lab.down();
  });

  it('a declared segment with link-local IPv6: an all-nodes ping answers from every other member; a node labelled in joins, unlabelled leaves', async () => {
    const config = await configFile(
      'segments.yaml',
      'plugins:\n  vxlan:\n    mode: segments\n    segments:\n      - name: blue\n        vni: 100\n        nodeSelector: { weft.io/segment: blue }\n',
    );
    const lab = await Lab.up({ name: name('vs'), nodes: 4, config, timeoutMs: 60_000 });
    for (const node of ['n1', 'n2', 'n3']) await lab.label(node, { 'weft.io/segment': 'blue' });
    const member = async (node: string) => (await lab.exec(node, ['ip', 'link', 'show', 'weft-vxblue'])).exitCode === 0;
    for (const node of ['n1', 'n2', 'n3']) await until(`${node} in the segment`, () => member(node), 20_000);
    const ll = async (node: string) => {
      let a: string | undefined;
      await until(`${node}'s link-local address`, async () => (a = await linkLocal(lab, node, 'weft-vxblue')) !== undefined, 10_000);
      return a as string;
    };
    const [a2, a3] = [await ll('n2'), await ll('n3')];
    await until('n1 hears n2 and n3', async () => {
      const heard = await allNodes(lab, 'n1', 'weft-vxblue');
      return heard.has(a2) && heard.has(a3);
    }, 20_000);
    expect(await member('n4')).toBe(false);

    // n4 labelled in: it joins, and n1 hears it too.
    await lab.label('n4', { 'weft.io/segment': 'blue' });
    await until('n4 in the segment', () => member('n4'), 20_000);
    const a4 = await ll('n4');
    await until('n1 hears n4', async () => (await allNodes(lab, 'n1', 'weft-vxblue')).has(a4), 20_000);

    // n2's label removed: it leaves (its interface goes), and the others stop replicating to it.
    await lab.label('n2', { 'weft.io/segment': null });
    await until('n2 out of the segment', async () => !(await member('n2')), 20_000);
    await until("n1's flooding list without n2", async () => !(await lab.exec('n1', ['bridge', 'fdb', 'show', 'dev', 'weft-vxblue'])).stdout.includes('198.18.1.12'), 15_000);
    const heard = await allNodes(lab, 'n1', 'weft-vxblue');
    expect(heard.has(a3) && heard.has(a4)).toBe(true);
    expect(heard.has(a2)).toBe(false);
    await lab.down();
  });

  it('underlay wireguard: a segment between the nodes carried inside the mesh — no VXLAN on the wire, only WireGuard', async () => {
    const config = await configFile(
      'mesh.yaml',
      [
        'plugins:',
        '  wireguard: { granularity: full, heartbeat: 5s }',
        '  vxlan:',
        '    mode: segments',
        '    underlay: wireguard',
        '    segments:',
        '      - name: sealed',
        '        vni: 200',
        '        addresses: { pools: [10.250.0.0/24] }',
        '',
      ].join('\n'),
    );
    const lab = await Lab.up({ name: name('vw'), nodes: 3, config, timeoutMs: 60_000 });
    expect((await lab.status()).problems).toEqual([]);
    const addressOf = async (node: string) => {
      let a: string | undefined;
      await until(`${node}'s segment address`, async () => (a = /inet (10\.250\.0\.\d+)\//.exec((await lab.exec(node, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'weft-vxsealed'])).stdout)?.[1]) !== undefined, 20_000);
      return a as string;
    };
    const [, b2, b3] = [await addressOf('n1'), await addressOf('n2'), await addressOf('n3')];
    await until('n1 → n2 on the segment', () => ping(lab, 'n1', b2), 20_000);
    await until('n1 → n3 on the segment', () => ping(lab, 'n1', b3), 20_000);
    // The segment's VTEPs are on the mesh's addresses.
    const link = (await lab.exec('n1', ['ip', '-d', 'link', 'show', 'weft-vxsealed'])).stdout;
    expect(link).toMatch(/vxlan id 200 local 100\.\d+\.\d+\.\d+/);
    const seen = await capture(lab, 'n1', ['udp'], async () => {
      for (let i = 0; i < 3; i++) await ping(lab, 'n1', b2);
    });
    expect(seen.filter((l) => /\.4789\b/.test(l)), seen.join('\n')).toEqual([]);
    expect(seen.filter((l) => /\.51820\b/.test(l)).length, seen.join('\n')).toBeGreaterThanOrEqual(6);
    await lab.down();
  });
});
