import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EndpointSliceInfo, ServiceInfo } from '@weft/core';
import { MemoryKernel, type NodeInit, startTestAgent, type TestAgent } from '@weft/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { mplsLwtunnelPlugin, type MplsLwtunnelStatus } from './index.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const VIP = '203.0.113.90';
const owner = { name: 'mpls-lwtunnel', linkPrefix: 'weft-mp', routeProtocol: 140 };
const front: ServiceInfo = { namespace: 'web', name: 'front', annotations: { 'weft.io/tunnel': VIP, 'weft.io/tunnel-encap': 'mpls' }, clusterIPs: [], externalIPs: [], loadBalancerIPs: [], ports: [], uid: 'u1', createdAt: 1 };
const gre: ServiceInfo = { ...front, name: 'other', uid: 'u2', annotations: { 'weft.io/tunnel': '203.0.113.91' } };
const slice = (name: string, service: string, endpoints: EndpointSliceInfo['endpoints']): EndpointSliceInfo => ({ namespace: 'web', name, serviceName: service, addressType: 'IPv4', endpoints });

/** A directory standing for the node's /proc and /run/netns, with a named namespace per pod of the node. */
async function fakeRoots(kernel: MemoryKernel, pods: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'weft-mpls-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'proc'));
  await mkdir(join(dir, 'netns'));
  const roots = { proc: join(dir, 'proc'), runNetns: join(dir, 'netns') };
  for (const [name, address] of Object.entries(pods)) {
    await writeFile(join(roots.runNetns, name), '');
    const ns = kernel.addNamespace(join(roots.runNetns, name), { 'net.ipv4.conf.all.rp_filter': '1', 'net.ipv4.conf.lo.rp_filter': '0', 'net.mpls.platform_labels': '0', 'net.mpls.conf.eth0.input': '0' });
    ns.addForeign({ links: [{ kind: 'dummy', name: 'eth0' }], addresses: [{ dev: 'eth0', address: `${address}/24` }] });
  }
  return roots;
}

async function start(o: { kernel: MemoryKernel; roots: { proc: string; runNetns: string }; nodes: NodeInit[]; slices: EndpointSliceInfo[]; config?: Record<string, unknown>; stateDir?: string }) {
  const t: TestAgent = await startTestAgent({
    plugins: [{ plugin: mplsLwtunnelPlugin({ roots: o.roots }), config: { ingress: { nodeSelector: { ingress: 'true' } }, tableSize: 251, ...o.config } }],
    nodes: o.nodes,
    kernel: o.kernel,
    ...(o.stateDir ? { stateDir: o.stateDir } : {}),
    cluster: { podNetworks: ['198.19.0.0/16'] },
  });
  cleanups.push(() => t.stop());
  t.cluster.setServices([front, gre]);
  t.cluster.setEndpointSlices(o.slices);
  return t;
}
const statusOf = async (t: TestAgent) => (await (await t.fetch('/api/mpls-lwtunnel/status')).json()) as MplsLwtunnelStatus;
/** A node's kernel with MPLS (its sysctls are there). */
const nodeKernel = () => new MemoryKernel({ 'net.ipv4.ip_forward': '0', 'net.mpls.platform_labels': '0', 'net.mpls.conf.eth0.input': '0' });
const underlay = (kernel: MemoryKernel, address: string) => kernel.addForeign({ links: [{ kind: 'dummy', name: 'eth0' }], addresses: [{ dev: 'eth0', address }] });

describe('the mpls-lwtunnel plugin in an agent', () => {
  it("an ingress node: a route per endpoint that pushes its node's label, on-link only; a hostile or off-link peer is left out and said", async () => {
    const kernel = nodeKernel();
    underlay(kernel, '198.18.1.11/24');
    const roots = await fakeRoots(kernel, {});
    const t = await start({
      kernel,
      roots,
      nodes: [
        { name: 'n1', internalAddresses: ['198.18.1.11'], podCIDRs: ['198.19.1.0/24'], labels: { ingress: 'true', 'topology.kubernetes.io/region': 'here' } },
        { name: 'n2', internalAddresses: ['198.18.1.12'], podCIDRs: ['198.19.2.0/24'], labels: { 'topology.kubernetes.io/region': 'here' }, annotations: { 'weft.io/mpls-labels': '198.19.2.10=1000,198.19.2.11=1001' } },
        // Claims n2's pod (left out), and its own pod sits behind a router (another subnet): not on-link.
        { name: 'n3', internalAddresses: ['198.18.2.13'], podCIDRs: ['198.19.3.0/24'], annotations: { 'weft.io/mpls-labels': '198.19.2.11=1005,198.19.3.10=1000' } },
        // In another location, though its address is on-link.
        { name: 'n4', internalAddresses: ['198.18.1.14'], podCIDRs: ['198.19.4.0/24'], labels: { 'topology.kubernetes.io/region': 'far' }, annotations: { 'weft.io/mpls-labels': '198.19.4.10=1000' } },
      ],
      slices: [
        slice('front-1', 'front', [
          { addresses: ['198.19.2.10'], ready: true, nodeName: 'n2' },
          { addresses: ['198.19.2.11'], ready: true, nodeName: 'n2' },
          { addresses: ['198.19.3.10'], ready: true, nodeName: 'n3' },
          { addresses: ['198.19.4.10'], ready: true, nodeName: 'n4' },
          // n2 has published no label for it (yet).
          { addresses: ['198.19.2.12'], ready: true, nodeName: 'n2' },
        ]),
        slice('other-1', 'other', [{ addresses: ['198.19.2.10'], ready: true, nodeName: 'n2' }]),
      ],
    });
    await t.waitFor(async () => (await statusOf(t)).vips.length === 1, { what: 'the VIP planned' });
    const s = kernel.snapshot();
    // The GRE Service (no weft.io/tunnel-encap) is not this plugin's.
    expect(s.routes.filter((r) => r.mpls !== undefined && r.mpls.length > 0).map((r) => [r.dst, r.table, r.via, r.dev, r.mpls])).toEqual([
      [`${VIP}/32`, 0x5801, '198.18.1.12', 'eth0', [1000]],
      [`${VIP}/32`, 0x5802, '198.18.1.12', 'eth0', [1001]],
    ]);
    expect(s.rules.map((r) => [r.priority, r.fwmark, r.table])).toEqual([[21_100, 0x10000, 0x5801], [21_100, 0x20000, 0x5802]]);
    expect(s.links.map((l) => l.name)).toEqual(['eth0']); // no tunnel device
    expect(s.nftables.get('inet weft-mpls-lwtunnel')?.elements?.b0).toHaveLength(251);
    const status = await statusOf(t);
    expect(status.vips[0]?.endpoints.map((e) => [e.address, e.node, e.label])).toEqual([['198.19.2.10', 'n2', 1000], ['198.19.2.11', 'n2', 1001]]);
    expect(status.unused.map((u) => [u.address, u.reason.replace(/:.*/, '')])).toEqual([
      ['198.19.2.12', 'n2 has published no label for it (yet)'],
      ['198.19.3.10', 'not on-link'],
      ['198.19.4.10', 'not on-link'],
    ]);
    expect(status.unused[2]?.reason).toMatch(/n4 is in location far/);
    expect(status.badLabels).toEqual([{ node: 'n3', problems: ["198.19.2.11: not in n3's pod CIDRs"] }]);
    const metrics = await (await t.fetch('/metrics')).text();
    expect(metrics).toMatch(/weft_mpls_lwtunnel_unused_endpoints\{[^}]*\} 3\n/);
    expect(metrics).toMatch(/weft_mpls_lwtunnel_bad_label_annotations\{[^}]*\} 1\n/);
  });

  it('an endpoint node: a label per pod, the swap toward it, the pod set up, the label published once ready; a restart keeps the labels and writes nothing', async () => {
    const kernel = nodeKernel();
    underlay(kernel, '198.18.1.12/24');
    const roots = await fakeRoots(kernel, { pod1: '198.19.2.10', pod2: '198.19.2.11' });
    const stateDir = await mkdtemp(join(tmpdir(), 'weft-mpls-state-'));
    cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
    const nodes: NodeInit[] = [
      { name: 'n2', internalAddresses: ['198.18.1.12'], podCIDRs: ['198.19.2.0/24'] },
      { name: 'n1', internalAddresses: ['198.18.1.11'], podCIDRs: ['198.19.1.0/24'], labels: { ingress: 'true' } },
    ];
    const slices = [
      slice('front-1', 'front', [
        { addresses: ['198.19.2.11'], ready: true, nodeName: 'n2' },
        { addresses: ['198.19.2.10'], ready: true, nodeName: 'n2' },
        // Its namespace is not there: it gets a label and a swap, and no traffic (its label is not published).
        { addresses: ['198.19.2.12'], ready: true, nodeName: 'n2' },
      ]),
    ];
    const t = await start({ kernel, roots, nodes, slices, stateDir });
    await t.waitFor(async () => (await statusOf(t)).pods.filter((p) => p.state === 'ready').length === 2, { what: 'the pods set up' }).catch(async (e: unknown) => {
      throw new Error(`${String(e)}: ${JSON.stringify(await statusOf(t))} ${JSON.stringify(t.logs.filter((l) => Number(l.level) >= 40))}`);
    });
    await t.waitFor(() => t.cluster.current().self.annotations['weft.io/mpls-labels'] === '198.19.2.10=1000,198.19.2.11=1001', { what: 'the ready pods\' labels published' });
    const s = kernel.snapshot();
    expect(s.mplsRoutes.map((m) => [m.label, m.as, m.via])).toEqual([[1000, [100], '198.19.2.10'], [1001, [100], '198.19.2.11'], [1002, [100], '198.19.2.12']]);
    expect([...s.sysctls].filter(([k]) => k.startsWith('net.mpls'))).toEqual([['net.mpls.platform_labels', '5000'], ['net.mpls.conf.eth0.input', '1']]);
    const pod = kernel.inNamespace(join(roots.runNetns, 'pod1'));
    const inPod = (await pod.observe(owner, { sysctlKeys: ['net.mpls.platform_labels', 'net.mpls.conf.eth0.input', 'net.ipv4.conf.all.rp_filter'], nftables: true, mpls: true })).state;
    expect(inPod.links.map((l) => [l.name, l.kind])).toEqual([['weft-mp0', 'dummy']]);
    expect(inPod.addresses).toEqual([{ dev: 'weft-mp0', address: `${VIP}/32` }]);
    expect(inPod.mplsRoutes).toEqual([{ label: 100, as: [], dev: 'lo' }]);
    expect(inPod.sysctls).toEqual([
      { key: 'net.mpls.platform_labels', value: '101' },
      { key: 'net.mpls.conf.eth0.input', value: '1' },
      { key: 'net.ipv4.conf.all.rp_filter', value: '2' },
    ]);
    const status = await statusOf(t);
    expect(status.pods.map((p) => [p.address, p.state, p.label])).toEqual([['198.19.2.10', 'ready', 1000], ['198.19.2.11', 'ready', 1001], ['198.19.2.12', 'missing', 1002]]);
    await t.stop();

    // Restarted on the same state: the same labels, and not one kernel write.
    const writes = kernel.log.length;
    const again = await start({ kernel, roots, nodes, slices, stateDir });
    await again.waitFor(async () => (await statusOf(again)).pods.filter((p) => p.state === 'ready').length === 2, { what: 'the pods set up again' });
    expect((await statusOf(again)).pods.map((p) => p.label)).toEqual([1000, 1001, 1002]);
    expect(kernel.log.slice(writes)).toEqual([]);
  }, 30_000);

  it('the label range used up: the pods beyond it get none, said in the status, a metric and the log', async () => {
    const kernel = nodeKernel();
    underlay(kernel, '198.18.1.12/24');
    const roots = await fakeRoots(kernel, { pod1: '198.19.2.10', pod2: '198.19.2.11' });
    const t = await start({
      kernel,
      roots,
      nodes: [{ name: 'n2', internalAddresses: ['198.18.1.12'], podCIDRs: ['198.19.2.0/24'] }],
      slices: [slice('front-1', 'front', [{ addresses: ['198.19.2.10'], ready: true, nodeName: 'n2' }, { addresses: ['198.19.2.11'], ready: true, nodeName: 'n2' }])],
      config: { labels: { first: 1000, last: 1000 } },
    });
    await t.waitFor(async () => (await statusOf(t)).exhausted.length === 1, { what: 'exhausted' });
    const status = await statusOf(t);
    expect(status.exhausted).toEqual(['198.19.2.11']);
    expect(status.converged).toBe(false);
    expect(status.summary).toMatch(/1 without a label \(range 1000-1000 used up\)/);
    await t.waitFor(() => t.cluster.current().self.annotations['weft.io/mpls-labels'] === '198.19.2.10=1000', { what: 'the labelled pod published' });
    expect(await (await t.fetch('/metrics')).text()).toMatch(/weft_mpls_lwtunnel_labels_exhausted\{[^}]*\} 1\n/);
    expect(t.logs.some((l) => /the label range is used up/.test(String(l.msg)))).toBe(true);
  });
});
