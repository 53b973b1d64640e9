import { MemoryKernel, type NodeInit, startTestAgent, type TestAgent } from '@weft/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import vxlan from './index.js';
import { VTEP_ANNOTATION, vtepMAC } from './facts.js';

const cleanups: TestAgent[] = [];
afterEach(async () => {
  for (const t of cleanups.splice(0)) await t.stop();
});

const peer = (name: string, underlay: string, extra: Partial<NodeInit> = {}): NodeInit => ({
  name,
  internalAddresses: [underlay],
  podCIDRs: [`198.19.${name.slice(1)}.0/24`],
  annotations: { [VTEP_ANNOTATION]: `${vtepMAC(name, 1)},${underlay}` },
  ...extra,
});
const self: NodeInit = { name: 'n1', internalAddresses: ['198.18.1.11'], podCIDRs: ['198.19.1.0/24'] };

function underlayKernel(): MemoryKernel {
  const kernel = new MemoryKernel();
  kernel.addForeign({ links: [{ kind: 'dummy', name: 'eth0', mtu: 9000 }], addresses: [{ dev: 'eth0', address: '198.18.1.11/24' }] });
  return kernel;
}

async function start(options: { kernel?: MemoryKernel; config?: Record<string, unknown>; nodes?: NodeInit[] } = {}) {
  const kernel = options.kernel ?? underlayKernel();
  const t = await startTestAgent({
    plugins: [{ plugin: vxlan, config: { ...options.config } }],
    nodes: options.nodes ?? [self, peer('n2', '198.18.1.12'), peer('n3', '198.18.2.13')],
    kernel,
    cluster: { podNetworks: ['198.19.0.0/16'] },
  });
  cleanups.push(t);
  await t.waitForReconcile('vxlan');
  return t;
}

describe('the vxlan plugin in an agent', () => {
  it('publishes its VTEP, makes the device at the underlay MTU minus 50, routes direct and encapsulated peers, and says so', async () => {
    const t = await start();
    await t.waitFor(() => t.cluster.current().self.annotations[VTEP_ANNOTATION] !== undefined, { what: 'the publish' });
    expect(t.cluster.current().self.annotations[VTEP_ANNOTATION]).toBe(`${vtepMAC('n1', 1)},198.18.1.11`);
    const s = t.kernel.snapshot();
    expect(s.links.find((l) => l.name === 'weft-vx0')).toMatchObject({ kind: 'vxlan', vni: 1, mtu: 8950, address: vtepMAC('n1', 1), learning: false });
    expect(s.fdb).toEqual([{ dev: 'weft-vx0', lladdr: vtepMAC('n3', 1), dst: '198.18.2.13' }]);
    const status = (await (await t.fetch('/api/vxlan/status')).json()) as { converged: boolean; summary: string; overlay: { peers: { name: string; path: string }[] } };
    expect(status.converged).toBe(true);
    expect(status.summary).toBe('2 peers (1 direct)');
    expect(status.overlay.peers.map((p) => [p.name, p.path])).toEqual([
      ['n2', 'direct'],
      ['n3', 'encapsulated'],
    ]);
    const metrics = await (await t.fetch('/metrics')).text();
    expect(metrics).toMatch(/weft_vxlan_peers\{[^}]*path="encapsulated"[^}]*\} 1\n/);
    expect(metrics).toMatch(/weft_vxlan_fdb_entries\{[^}]*device="overlay"[^}]*\} 1\n/);
  });

  it('a restart changes nothing in the kernel: the MAC is the same without any saved state', async () => {
    const kernel = underlayKernel();
    const first = await start({ kernel });
    await first.stop();
    cleanups.splice(cleanups.indexOf(first), 1);
    const writes = kernel.log.length;
    const second = await start({ kernel });
    await second.trigger('vxlan');
    expect(kernel.log.length).toBe(writes);
  });

  it('a node that leaves: its entries and routes go in one reconcile', async () => {
    const t = await start();
    t.cluster.removeNode('n3');
    await t.waitFor(() => t.kernel.snapshot().fdb.length === 0, { what: "n3's FDB entry removed" });
    expect(t.kernel.snapshot().neighbours).toEqual([]);
    expect(t.kernel.snapshot().routes.map((r) => r.dst)).toEqual(['198.19.2.0/24']);
  });

  it('a bad peer is left out and reported; the others are unharmed', async () => {
    const t = await start({ nodes: [self, peer('n2', '198.18.1.12'), peer('n3', '198.18.2.13', { annotations: { [VTEP_ANNOTATION]: 'ff:ff:ff:ff:ff:ff,198.18.2.13' } })] });
    const status = (await (await t.fetch('/api/vxlan/status')).json()) as { overlay: { peers: { name: string }[]; excluded: { node: string; reason: string }[] } };
    expect(status.overlay.peers.map((p) => p.name)).toEqual(['n2']);
    expect(status.overlay.excluded).toEqual([{ node: 'n3', kind: 'invalid', reason: expect.stringMatching(/not a unicast MAC/) as string }]);
    expect(t.logs.some((l) => l.msg === 'peer left out of the overlay: invalid data' && l.peer === 'n3')).toBe(true);
  });

  it('refuses a config whose segment reuses the overlay\'s VNI, naming where', async () => {
    const err = await start({ config: { segments: [{ name: 'lab', vni: 1 }] } }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/<test config>:\d+:\d+ plugins\.vxlan\.segments\[0\]\.vni: VNI 1 is already the overlay's/);
  });

  it('refuses overlapping pools and a bridge of another plugin', async () => {
    const err = await start({
      config: {
        mode: 'segments',
        segments: [
          { name: 'a', vni: 10, addresses: { pools: ['10.200.0.0/16'] } },
          { name: 'b', vni: 11, addresses: { pools: ['10.200.5.0/24'] }, bridge: 'weft-wg0' },
        ],
      },
    }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/<test config>:\d+:\d+ plugins\.vxlan\.segments\[1\]\.bridge: weft-wg0 belongs to another plugin/);
    expect(String(err)).toMatch(/segments\[1\]\.addresses: 10\.200\.5\.0\/24 \(segment b\) overlaps 10\.200\.0\.0\/16 \(segment a\)/);
  });

  it('a segment follows its selector: a node labelled in joins, the label removed leaves', async () => {
    const labelled = { labels: { 'weft.io/segment': 'blue' } };
    const t = await start({
      config: { mode: 'segments', segments: [{ name: 'blue', vni: 100, nodeSelector: { 'weft.io/segment': 'blue' } }] },
      nodes: [{ ...self, ...labelled }, peer('n2', '198.18.1.12', labelled), peer('n3', '198.18.2.13')],
    });
    const floods = () => t.kernel.snapshot().fdb.filter((f) => f.lladdr === '00:00:00:00:00:00').map((f) => f.dst);
    expect(floods()).toEqual(['198.18.1.12']);
    t.cluster.setNode(peer('n3', '198.18.2.13', labelled));
    await t.waitFor(() => floods().length === 2, { what: 'n3 joined' });
    t.cluster.setNode(peer('n2', '198.18.1.12'));
    await t.waitFor(() => floods().join() === '198.18.2.13', { what: 'n2 left' });
    expect(t.cluster.current().self.annotations[VTEP_ANNOTATION]).toBeUndefined();
  });
});

describe('the vxlan plugin reconfigured (a ConfigMap change)', () => {
  it('a segment removed from the config is removed from the node; one added with a new label key is read', async () => {
    const { buildTestConfig } = await import('@weft/core/testing');
    const blue = { name: 'blue', vni: 100, nodeSelector: { 'weft.io/segment': 'blue' } };
    const nodes = [
      { ...self, labels: { 'weft.io/segment': 'blue', 'example.com/rack': 'r1' } },
      peer('n2', '198.18.1.12', { labels: { 'weft.io/segment': 'blue', 'example.com/rack': 'r1' } }),
    ];
    const t = await start({ config: { mode: 'segments', segments: [blue] }, nodes });
    const links = () => t.kernel.snapshot().links.map((l) => l.name).filter((n) => n.startsWith('weft-vx')).sort();
    expect(links()).toEqual(['weft-vxblue']);
    const next = await buildTestConfig({ plugins: [{ plugin: vxlan, config: { mode: 'segments', segments: [{ name: 'rack', vni: 101, nodeSelector: { 'example.com/rack': 'r1' } }] } }], nodes, cluster: { podNetworks: ['198.19.0.0/16'] } });
    await t.agent.applyConfig({ ...next, core: t.agent.currentConfig.core });
    await t.waitFor(() => links().join() === 'weft-vxrack', { what: 'blue removed, rack made' });
    // n2 is a member by the new selector; the plugin now reads that label key (the sources keep only keys read).
    const reads = vxlan.reads as (config: unknown) => { labels: string[] };
    expect(reads(next.plugins[0]?.config).labels).toEqual(['example.com/rack']);
    expect(t.kernel.snapshot().fdb.filter((f) => f.dev === 'weft-vxrack').map((f) => f.dst)).toEqual(['198.18.1.12', '198.18.1.12']);
  });
});
