import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EndpointSliceInfo, ServiceInfo } from '@weft/core';
import { FakeClock, MemoryKernel, type NodeInit, startTestAgent, type TestAgent } from '@weft/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { greTunnelPlugin, type GreTunnelStatus } from './index.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const nodes: NodeInit[] = [
  { name: 'n1', internalAddresses: ['198.18.1.11'], podCIDRs: ['198.19.1.0/24'], labels: { ingress: 'true' } },
  { name: 'n2', internalAddresses: ['198.18.1.12'], podCIDRs: ['198.19.2.0/24'] },
];
const front: ServiceInfo = { namespace: 'web', name: 'front', annotations: { 'weft.io/tunnel': '203.0.113.80' }, clusterIPs: [], externalIPs: [], loadBalancerIPs: [], ports: [], uid: 'u1', createdAt: 1 };
const slice = (endpoints: EndpointSliceInfo['endpoints']): EndpointSliceInfo => ({ namespace: 'web', name: 'front-1', serviceName: 'front', addressType: 'IPv4', endpoints });
const PODS = [
  { addresses: ['198.19.1.10'], ready: true, nodeName: 'n1' },
  { addresses: ['198.19.2.10'], ready: true, nodeName: 'n2' },
];

/** A directory standing for the node's /proc and /run/netns, with a named namespace per pod of n1. */
async function fakeRoots(kernel: MemoryKernel, pods: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'weft-gre-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'proc'));
  await mkdir(join(dir, 'netns'));
  const roots = { proc: join(dir, 'proc'), runNetns: join(dir, 'netns') };
  const add = async (name: string, address: string) => {
    await writeFile(join(roots.runNetns, name), '');
    const ns = kernel.addNamespace(join(roots.runNetns, name), { 'net.ipv4.conf.all.rp_filter': '1', 'net.ipv4.conf.weft-gre0.rp_filter': '1' });
    ns.addForeign({ links: [{ kind: 'dummy', name: 'eth0' }], addresses: [{ dev: 'eth0', address: `${address}/24` }] });
    return ns;
  };
  for (const [name, address] of Object.entries(pods)) await add(name, address);
  return { roots, add };
}

async function start(kernel: MemoryKernel, roots: { proc: string; runNetns: string }, stateDir?: string, clock?: FakeClock) {
  const t: TestAgent = await startTestAgent({
    ...(clock ? { clock, reconcile: { debounce: '10ms', resync: '10m' } } : {}),
    plugins: [{ plugin: greTunnelPlugin({ roots }), config: { ingress: { nodeSelector: { ingress: 'true' } }, tableSize: 251 } }],
    nodes,
    kernel,
    ...(stateDir ? { stateDir } : {}),
    cluster: { podNetworks: ['198.19.0.0/16'] },
  });
  cleanups.push(() => t.stop());
  t.cluster.setServices([front]);
  t.cluster.setEndpointSlices([slice(PODS)]);
  return t;
}
const statusOf = async (t: TestAgent) => (await (await t.fetch('/api/gre-tunnel/status')).json()) as GreTunnelStatus;

describe('the gre-tunnel plugin in an agent', () => {
  it('an ingress node with an endpoint pod: the table, rules and routes here, the VIP in the pod; a restart writes nothing', async () => {
    const kernel = new MemoryKernel();
    const { roots } = await fakeRoots(kernel, { pod1: '198.19.1.10' });
    const stateDir = await mkdtemp(join(tmpdir(), 'weft-gre-state-'));
    cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
    const t = await start(kernel, roots, stateDir);
    await t.waitFor(async () => (await statusOf(t)).converged && (await statusOf(t)).vips.length === 1, { what: 'converged' });
    const s = kernel.snapshot();
    expect(s.links.map((l) => l.name)).toEqual(['weft-gre0']);
    expect(s.routes.map((r) => [r.dst, r.table, r.ipEncap?.dst])).toEqual([
      ['203.0.113.80/32', 0x5701, '198.19.1.10'],
      ['203.0.113.80/32', 0x5702, '198.19.2.10'],
    ]);
    expect(s.nftables.get('inet weft-gre-tunnel')?.elements?.b0).toHaveLength(251);
    const pod = kernel.inNamespace(join(roots.runNetns, 'pod1'));
    const inPod = (await pod.observe({ name: 'gre-tunnel', linkPrefix: 'weft-gre', routeProtocol: 121 }, { sysctlKeys: ['net.ipv4.conf.all.rp_filter'], nftables: true })).state;
    expect(inPod.links.map((l) => [l.name, l.kind, (l as { external?: boolean }).external])).toEqual([['weft-gre0', 'gre', true]]);
    expect(inPod.addresses).toEqual([{ dev: 'weft-gre0', address: '203.0.113.80/32' }]);
    expect(inPod.sysctls).toEqual([{ key: 'net.ipv4.conf.all.rp_filter', value: '2' }]);
    kernel.setNftCounter('inet', 'weft-gre-tunnel', 'e2', { packets: 7, bytes: 840 });
    await t.trigger('gre-tunnel');
    const status = await statusOf(t);
    expect(status.summary).toBe('ingress: 1 VIP(s), 2 endpoint(s), 1/1 pod(s) ready');
    expect(status.vips[0]?.endpoints.map((e) => [e.address, e.packets, e.bytes])).toEqual([['198.19.1.10', 0, 0], ['198.19.2.10', 7, 840]]);
    expect(status.pods).toEqual([{ address: '198.19.1.10', vips: ['203.0.113.80'], state: 'ready', netns: join(roots.runNetns, 'pod1') }]);
    const metrics = await (await t.fetch('/metrics')).text();
    expect(metrics).toMatch(/weft_gre_tunnel_vips\{[^}]*\} 1\n/);
    expect(metrics).toMatch(/weft_gre_tunnel_pods\{[^}]*state="ready"[^}]*\} 1\n/);
    await t.stop();

    // Another agent on the same node and state: the same slots, so nothing is written.
    const writes = kernel.log.length;
    const again = await start(kernel, roots, stateDir);
    await again.waitFor(async () => (await statusOf(again)).converged && (await statusOf(again)).vips.length === 1, { what: 'converged again' });
    await again.trigger('gre-tunnel');
    expect(kernel.log.slice(writes)).toEqual([]);
  });

  it('one endpoint changes: the bucket deltas only, no new table; a pod that is not there yet is reported and set up once it is', async () => {
    const kernel = new MemoryKernel();
    const { roots, add } = await fakeRoots(kernel, {});
    const t = await start(kernel, roots);
    await t.waitFor(async () => (await statusOf(t)).vips.length === 1, { what: 'the VIP' });
    let status = await statusOf(t);
    expect(status.pods).toEqual([{ address: '198.19.1.10', vips: ['203.0.113.80'], state: 'missing', problem: 'no network namespace holds 198.19.1.10' }]);
    expect(status.converged).toBe(false);
    await add('late', '198.19.1.10');
    await t.waitFor(async () => (await statusOf(t)).converged, { what: 'the late pod set up' });

    const writes = kernel.log.length;
    t.cluster.setEndpointSlices([slice([...PODS, { addresses: ['198.19.2.11'], ready: true, nodeName: 'n2' }])]);
    await t.waitFor(async () => (await statusOf(t)).vips[0]?.endpoints.length === 3, { what: 'the third endpoint' });
    const changes = kernel.log.slice(writes).filter((c) => c.kind === 'nftables');
    expect(changes.map((c) => c.op)).toEqual(['set']);
    // What weft plan prints for it: a count per set, not the buckets.
    expect(changes[0]?.fields).toEqual([expect.stringMatching(/^b0 \+\d{2,3} -\d{2,3}$/), 'counted +1 -0', 'live +1 -0', 'counters +1 -0']);
    status = await statusOf(t);
    expect(status.vips[0]?.bucketsMovedLastChange).toBeGreaterThan(60);
    expect(status.vips[0]?.bucketsMovedLastChange).toBeLessThan(110);
  });

  it('a pod that stays missing is looked for every 2 s for a minute, then only at the resyncs', async () => {
    const kernel = new MemoryKernel();
    const { roots } = await fakeRoots(kernel, {});
    const clock = new FakeClock();
    const t = await start(kernel, roots, undefined, clock);
    for (let i = 0; i < 200 && (await statusOf(t)).pods[0]?.state !== 'missing'; i++) await clock.advance(20);
    expect((await statusOf(t)).pods[0]?.state).toBe('missing');
    const runs = () => t.status('gre-tunnel').runs;
    const first = runs();
    for (let i = 0; i < 30; i++) {
      await clock.advance(2000);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(runs()).toBeGreaterThanOrEqual(first + 20);
    const later = runs();
    for (let i = 0; i < 60; i++) {
      await clock.advance(2000);
      await new Promise((r) => setTimeout(r, 5));
    }
    // Two minutes on, with a 10-minute resync: at most the retry that was pending.
    expect(runs() - later).toBeLessThanOrEqual(1);
  });

  it('hostile Services are refused with a status entry and a metric; the others are served', async () => {
    const kernel = new MemoryKernel();
    const { roots } = await fakeRoots(kernel, { pod1: '198.19.1.10' });
    const t = await start(kernel, roots);
    t.cluster.setServices([
      front,
      { ...front, name: 'node-vip', annotations: { 'weft.io/tunnel': '198.18.1.12' } },
      { ...front, name: 'pod-net', annotations: { 'weft.io/tunnel': '198.19.9.9' } },
      { ...front, name: 'garbage', annotations: { 'weft.io/tunnel': 'not-an-ip' } },
    ]);
    await t.waitFor(async () => (await statusOf(t)).refused.length === 3, { what: 'three refused' });
    const status = await statusOf(t);
    expect(status.refused.map((r) => r.name)).toEqual(['garbage', 'node-vip', 'pod-net']);
    expect(status.vips.map((v) => v.vip)).toEqual(['203.0.113.80']);
    expect(await (await t.fetch('/metrics')).text()).toMatch(/weft_gre_tunnel_refused_services\{[^}]*\} 3\n/);
    expect(t.logs.some((l) => l.msg === 'tunnelled Service refused' && l.service === 'web/node-vip')).toBe(true);
  });
});
