import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpGet } from '../core/src/observe/http-get.js';
import { Lab, type LabService } from '../core/src/lab/index.js';
import './support/builtins.js';
import { TunnelLab } from './support/tunnel-lab.js';
import { until } from './support/until.js';

// Inside the VM (test/vm.e2e.test.ts boots it; this host kernel has no MPLS): the lab — 2 ingress nodes (n1,
// n2) and 2 endpoint nodes (n3, n4) on one L2 segment, 3 endpoint pods, the outside client behind the router — and
// its scenarios on a real kernel with real agents. The ingress routes push a label toward the endpoint's node; the
// node swaps it for 100 toward the pod; the pod pops it and takes the packet. The pod networks are routed by the
// vxlan plugin.
const VIP = '203.0.113.90';
const PORT = '7000';
const PODS = ['n3:pod', 'n3:pod2', 'n4:pod'] as const;
const INGRESS = ['n1', 'n2'] as const;
const PLUGIN = 'mpls-lwtunnel';

describe('MPLS service tunnels in a lab on the VM kernel', () => {
  let lab: Lab;
  let t: TunnelLab;
  let dir: string;
  const echo: LabService = { name: 'echo', annotations: { 'weft.io/tunnel': VIP, 'weft.io/tunnel-encap': 'mpls' }, endpoints: PODS.map((pod) => ({ pod })) };
  /** The labels a node published (its document in the lab's node directory). */
  const published = async (node: string): Promise<Record<string, number>> => {
    const doc = parse(await readFile(join(lab.dir, 'nodes', `${node}.yaml`), 'utf8')) as { annotations?: Record<string, string> };
    const text = doc.annotations?.['weft.io/mpls-labels'] ?? '';
    return Object.fromEntries(text.split(',').filter((p) => p !== '').map((p) => [p.split('=')[0] as string, Number(p.split('=')[1])]));
  };
  const underlayDev = async (node: string) => {
    const address = lab.topology.nodes.find((n) => n.name === node)?.underlay ?? '?';
    const line = (await lab.exec(node, ['ip', '-o', '-4', 'address', 'show'])).stdout.split('\n').find((l) => l.includes(` ${address}/`));
    return line?.split(/\s+/)[1] ?? '?';
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-vmmpls-'));
    const config = join(dir, 'lab.yaml');
    await writeFile(
      config,
      [
        'plugins:',
        '  vxlan:',
        '    mode: overlay',
        '    setupTimeout: 240s',
        `  ${PLUGIN}:`,
        '    ingress:',
        '      nodeSelector:',
        '        weft.io/ingress: "true"',
        '    tableSize: 4093',
        '    drainTimeout: 60s',
        '    labels: { first: 2000, last: 2099, hold: 30s }',
        '    setupTimeout: 240s',
        '',
      ].join('\n'),
    );
    lab = await Lab.up({ name: 'vmmpls', nodes: 4, pods: 2, client: true, config, timeoutMs: 300_000 });
    t = new TunnelLab(lab, { plugin: PLUGIN, vip: VIP, port: PORT, ingress: INGRESS });
    for (const n of INGRESS) await lab.label(n, { 'weft.io/ingress': 'true' });
    for (const pod of PODS) t.serve(pod);
    await lab.declareServices([echo]);
    await lab.routeVip(VIP, [...INGRESS]);
    await t.ingressSees('both ingress nodes route the VIP to the 3 pods', t.addresses(PODS));
  }, 900_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail') return;
    await t.keepDiagnostics('vm-mpls-lwtunnel', ctx.task.name, [
      ...INGRESS.flatMap((n) => [
        [n, ['ip', 'rule']],
        [n, ['ip', 'route', 'show', 'table', 'all', 'proto', '140']],
      ] as const),
      ...['n3', 'n4'].flatMap((n) => [[n, ['ip', '-f', 'mpls', 'route']], [n, ['sysctl', 'net.mpls']]] as const),
      ...PODS.flatMap((p) => [[p, ['ip', '-o', 'address']], [p, ['ip', '-f', 'mpls', 'route']]] as const),
    ]);
  });

  afterAll(async () => {
    t?.stopServers();
    await lab?.down();
    await rm(dir, { recursive: true, force: true });
  });

  it('TCP and UDP from the outside client reach a pod that sees the client and the VIP; the underlay carries the labels the nodes published; no tunnel interface anywhere', async () => {
    const labels = { ...(await published('n3')), ...(await published('n4')) };
    expect(Object.keys(labels).sort()).toEqual(PODS.map((p) => t.addressOf(p)).sort());
    for (const l of Object.values(labels)) expect(l).toBeGreaterThanOrEqual(2000);
    // What n3's underlay carries while the client talks to the VIP: MPLS frames, with n3's labels.
    const dev = await underlayDev('n3');
    const capture = lab.exec('n3', ['tcpdump', '-i', dev, '-nn', '-l', '-c', '6', 'mpls'], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 3000));
    const tcp = (await t.client(['once', VIP, PORT, 'tcp'])).split(' ');
    expect(PODS).toContain(tcp[0]);
    expect(tcp.slice(1)).toEqual(['192.0.2.2', VIP]);
    const udp = (await t.client(['once', VIP, PORT, 'udp'])).split(' ');
    expect(PODS).toContain(udp[0]);
    expect(udp.slice(1)).toEqual(['192.0.2.2', VIP]);
    // The MSS a pod offers on the VIP leaves room for the label (its MTU - 40 - 4): the node swaps the label toward
    // the pod without a word when a packet does not fit. Seen on the client's side of the router.
    const mtu = Number(/ mtu (\d+)/.exec((await lab.exec('n3:pod', ['ip', '-o', 'link', 'show', 'eth0'])).stdout)?.[1]);
    const synAck = lab.exec('client', ['tcpdump', '-i', 'eth0', '-nn', '-l', '-c', '1', `src host ${VIP} and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)`], { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 3000));
    await t.client(['once', VIP, PORT, 'tcp']);
    expect((await synAck).stdout).toContain(`mss ${String(mtu - 44)}`);
    // Full-size segments from the client: the tunnel's overhead does not fit a 1500-byte packet, so the ingress node
    // must say so (ICMP, path MTU discovery) or fragment; 300 kB arrive whole either way.
    const bulk = (await t.client(['bulk', VIP, PORT, '300000'])).split(' ');
    expect(PODS).toContain(bulk[0]);
    expect(bulk.slice(1)).toEqual(['192.0.2.2', VIP]);
    await t.client(['spread', VIP, PORT, '20']);
    const dump = (await capture).stdout;
    const seen = [...dump.matchAll(/MPLS \(label (\d+)/g)].map((m) => Number(m[1]));
    expect(seen.length, dump).toBeGreaterThan(0);
    const n3Labels = Object.entries(await published('n3')).map(([, l]) => l);
    for (const l of seen) expect(n3Labels, dump).toContain(l);
    expect(dump).toContain(`> ${VIP}.${PORT}`);
    // No tunnel interface per endpoint, nor any: the ingress nodes have no link of the plugin; a pod has its dummy.
    expect((await lab.exec('n1', ['ip', '-o', 'link', 'show'])).stdout).not.toMatch(/weft-mp/);
    expect((await lab.exec('n3:pod', ['ip', '-d', '-o', 'link', 'show', 'weft-mp0'])).stdout).toContain('dummy');
    expect((await lab.exec('n3:pod', ['ip', '-f', 'mpls', 'route'])).stdout).toMatch(/^100 dev lo/m);
  });

  it('200 client flows spread over all 3 endpoints, each within the balance bound, counted per endpoint', async () => {
    const counts = JSON.parse(await t.client(['spread', VIP, PORT, '200'])) as Record<string, number>;
    expect(Object.keys(counts).sort()).toEqual([...PODS].sort());
    for (const pod of PODS) expect(counts[pod], JSON.stringify(counts)).toBeGreaterThanOrEqual(46);
    for (const pod of PODS) expect(counts[pod], JSON.stringify(counts)).toBeLessThanOrEqual(87);
    await until('every endpoint counted', async () => {
      const packets = new Map<string, number>();
      for (const n of INGRESS) for (const e of (await t.status(n)).vips[0]?.endpoints ?? []) packets.set(e.address, (packets.get(e.address) ?? 0) + e.packets);
      return packets.size === 3 && [...packets.values()].every((p) => p >= 46 * 3);
    }, 120_000);
  });

  it('hitless ingress failover: n1 leaves the ECMP set, every stream keeps its pod; with per-node seeds (the control) streams break', async () => {
    const shared = await t.streams(50, () => lab.routeVip(VIP, ['n2']));
    await lab.routeVip(VIP, [...INGRESS]);
    expect(shared).toHaveLength(50);
    expect(shared.filter((s) => s.error !== undefined || s.pods.length !== 1)).toEqual([]);

    await t.configureAll('seedPerNode', true);
    await until('per-node seeds on both ingress nodes', async () => {
      const [a, b] = await Promise.all(INGRESS.map(async (n) => (await t.status(n)).vips[0]?.seed));
      return a !== undefined && b !== undefined && a !== b;
    }, 120_000);
    try {
      const control = await t.streams(50, () => lab.routeVip(VIP, ['n2']));
      expect(control.filter((s) => s.error !== undefined || s.pods.length !== 1).length, JSON.stringify(control)).toBeGreaterThan(0);
    } finally {
      await lab.routeVip(VIP, [...INGRESS]);
      await t.configureAll('seedPerNode', false);
      await until('the shared seed back', async () => {
        const [a, b] = await Promise.all(INGRESS.map(async (n) => (await t.status(n)).vips[0]?.seed));
        return a !== undefined && a === b;
      }, 120_000);
    }
  });

  it('an endpoint removed: only its streams move, and its label is held, not given to another pod; an endpoint draining: no new flows, its open streams go on', async () => {
    const [removed, draining] = ['n3:pod2', 'n3:pod'] as const;
    const before = await published('n3');
    const afterRemoval = await t.streams(30, async () => {
      await lab.declareServices([{ ...echo, endpoints: PODS.filter((p) => p !== removed).map((pod) => ({ pod })) }]);
      await t.ingressSees(`${removed} removed`, t.addresses(PODS.filter((p) => p !== removed)));
    });
    for (const s of afterRemoval) {
      if (s.pods[0] === removed) continue;
      expect(s, JSON.stringify(afterRemoval)).toEqual({ pods: [s.pods[0]] });
    }
    await until("n3 no longer publishes the removed pod's label", async () => (await published('n3'))[t.addressOf(removed)] === undefined, 60_000);
    // Back within the label hold (30 s): it gets a label no pod had a moment ago (the old one is held).
    await lab.declareServices([echo]);
    await t.ingressSees('all 3 again', t.addresses(PODS));
    const after = await published('n3');
    expect(after[t.addressOf(draining)]).toBe(before[t.addressOf(draining)]);
    expect(after[t.addressOf(removed)]).not.toBe(before[t.addressOf(removed)]);

    const drained = await t.streams(30, async () => {
      await lab.declareServices([{ ...echo, endpoints: PODS.map((pod) => ({ pod, ...(pod === draining ? { ready: false, serving: true, terminating: true } : {}) })) }]);
      await t.ingressSees(`${draining} draining`, { ...t.addresses(PODS), [t.addressOf(draining)]: 'draining' });
      const fresh = JSON.parse(await t.client(['spread', VIP, PORT, '60'])) as Record<string, number>;
      expect(fresh[draining], JSON.stringify(fresh)).toBeUndefined();
    });
    expect(drained.filter((s) => s.error !== undefined || s.pods.length !== 1)).toEqual([]);
    expect(drained.some((s) => s.pods[0] === draining)).toBe(true);
    await lab.declareServices([echo]);
    await t.ingressSees('all 3 active again', t.addresses(PODS));
  });

  it('an endpoint node agent killed -9 and restarted keeps its labels, and open streams go on', async () => {
    const before = await published('n4');
    const survived = await t.streams(30, async () => {
      await lab.killAgent('n4');
      await lab.startAgent('n4');
      await until('n4 back', async () => (await t.status('n4')).pods.filter((p) => p.state === 'ready').length === 1, 120_000);
    });
    expect(survived.filter((s) => s.error !== undefined || s.pods.length !== 1)).toEqual([]);
    expect(await published('n4')).toEqual(before);
  });

  it("drift: the pod's MPLS route, its VIP, and the node's swap deleted by hand come back within the resync", async () => {
    const pod = 'n4:pod';
    const label = (await published('n4'))[t.addressOf(pod)];
    expect((await lab.exec(pod, ['ip', '-f', 'mpls', 'route', 'del', '100'])).exitCode).toBe(0);
    expect((await lab.exec(pod, ['ip', 'address', 'del', `${VIP}/32`, 'dev', 'weft-mp0'])).exitCode).toBe(0);
    expect((await lab.exec('n4', ['ip', '-f', 'mpls', 'route', 'del', String(label)])).exitCode).toBe(0);
    // The lab's resync is 5 s.
    await until('the pod route, the VIP and the swap back', async () => {
      const route = (await lab.exec(pod, ['ip', '-f', 'mpls', 'route'])).stdout;
      const vip = (await lab.exec(pod, ['ip', '-o', 'address', 'show', 'dev', 'weft-mp0'])).stdout;
      const swap = (await lab.exec('n4', ['ip', '-f', 'mpls', 'route', 'show', String(label)])).stdout;
      return /^100 dev lo/m.test(route) && vip.includes(VIP) && swap.includes('as to 100');
    }, 30_000);
    const counts = JSON.parse(await t.client(['spread', VIP, PORT, '60'])) as Record<string, number>;
    expect(counts[pod], JSON.stringify(counts)).toBeGreaterThan(0);
  });

  it('an endpoint whose node is not on-link (another location): not used by the ingress nodes, reported and counted; the others serve', async () => {
    await t.configure(['discovery', 'directory', 'self', 'labels', 'topology.kubernetes.io/region'], 'far', ['n4']);
    try {
      await t.ingressSees('n4:pod left out', t.addresses(['n3:pod', 'n3:pod2']));
      const s = await t.status('n1');
      expect(s.unused).toEqual([expect.objectContaining({ address: t.addressOf('n4:pod'), node: 'n4', reason: expect.stringMatching(/^not on-link: n4 is in location far/) as string })]);
      const metrics = (await httpGet({ socket: join(lab.dir, 'n1', 'http.sock') }, '/metrics', 5000)).body;
      expect(metrics).toMatch(/weft_mpls_lwtunnel_unused_endpoints\{[^}]*\} 1\n/);
      const counts = JSON.parse(await t.client(['spread', VIP, PORT, '40'])) as Record<string, number>;
      expect(Object.keys(counts).sort()).toEqual(['n3:pod', 'n3:pod2']);
    } finally {
      await t.configure(['discovery', 'directory', 'self', 'labels', 'topology.kubernetes.io/region'], lab.topology.nodes.find((n) => n.name === 'n4')?.location ?? '', ['n4']);
    }
    await t.ingressSees('n4:pod back', t.addresses(PODS));
  });
});
