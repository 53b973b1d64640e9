import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpGet } from '../core/src/observe/http-get.js';
import { Lab, type LabService } from '../core/src/lab/index.js';
import './support/builtins.js';
import { TunnelLab } from './support/tunnel-lab.js';
import { until } from './support/until.js';

// Inside the VM (test/vm.e2e.test.ts boots it; this host kernel has no GRE): the lab — 2 ingress nodes (n1,
// n2) that the router reaches by ECMP, 3 endpoint pods on 2 other nodes (n3, n4), an outside client — and its
// scenarios, on a real kernel with real agents. The pod networks are routed by the vxlan plugin (one location:
// plain routes, no encapsulation).
const VIP = '203.0.113.80';
const PORT = '7000';
const PODS = ['n3:pod', 'n3:pod2', 'n4:pod'] as const;
const INGRESS = ['n1', 'n2'] as const;

describe('GRE service tunnels in a lab on the VM kernel', () => {
  let lab: Lab;
  let t: TunnelLab;
  let dir: string;
  const echo: LabService = { name: 'echo', annotations: { 'weft.io/tunnel': VIP }, endpoints: PODS.map((pod) => ({ pod })) };
  const status = (node: string) => t.status(node);
  const client = (args: string[]) => t.client(args);
  const ingressSees = (what: string, want: Record<string, string>) => t.ingressSees(what, want);
  const streams = (n: number, during: () => Promise<void>) => t.streams(n, during);
  const configureAll = (key: string, value: unknown) => t.configureAll(key, value);
  const addressOf = (pod: string) => t.addressOf(pod);
  const addresses = (pods: readonly string[]) => t.addresses(pods);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-vmgre-'));
    const config = join(dir, 'lab.yaml');
    // Under TCG on a busy host a plugin's setup can take longer than the default 30 s.
    await writeFile(
      config,
      [
        'plugins:',
        '  vxlan:',
        '    mode: overlay',
        '    setupTimeout: 240s',
        '  gre-tunnel:',
        '    ingress:',
        '      nodeSelector:',
        '        weft.io/ingress: "true"',
        '    tableSize: 4093',
        '    drainTimeout: 60s',
        '    setupTimeout: 240s',
        '',
      ].join('\n'),
    );
    lab = await Lab.up({ name: 'vmgre', nodes: 4, pods: 2, client: true, config, timeoutMs: 300_000 });
    t = new TunnelLab(lab, { plugin: 'gre-tunnel', vip: VIP, port: PORT, ingress: INGRESS });
    for (const n of INGRESS) await lab.label(n, { 'weft.io/ingress': 'true' });
    for (const pod of PODS) t.serve(pod);
    await lab.declareServices([echo]);
    await lab.routeVip(VIP, [...INGRESS]);
    await ingressSees('both ingress nodes route the VIP to the 3 pods', addresses(PODS));
    await until('the 3 pods set up', async () => (await status('n3')).pods.filter((p) => p.state === 'ready').length === 2 && (await status('n4')).pods.filter((p) => p.state === 'ready').length === 1, 120_000);
  }, 900_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state !== 'fail') return;
    await t.keepDiagnostics('vm-gre-tunnel', ctx.task.name, [
      ...INGRESS.flatMap((n) => [
        [n, ['nft', 'list', 'chain', 'inet', 'weft-gre-tunnel', 'vip0']],
        [n, ['ip', 'rule']],
        [n, ['ip', 'route', 'show', 'table', 'all', 'proto', '121']],
      ] as const),
      ...PODS.map((p) => [p, ['ip', '-o', 'address']] as const),
      ['client', ['ip', 'route']],
    ]);
  });

  afterAll(async () => {
    t?.stopServers();
    await lab?.down();
    await rm(dir, { recursive: true, force: true });
  });

  it('TCP and UDP from the outside client reach a pod, which sees the client address and the VIP as its own', async () => {
    const tcp = (await client(['once', VIP, PORT, 'tcp'])).split(' ');
    expect(PODS).toContain(tcp[0]);
    expect(tcp.slice(1)).toEqual(['192.0.2.2', VIP]);
    const udp = (await client(['once', VIP, PORT, 'udp'])).split(' ');
    expect(PODS).toContain(udp[0]);
    expect(udp.slice(1)).toEqual(['192.0.2.2', VIP]);
    // Full-size segments from the client: the tunnel's overhead does not fit a 1500-byte packet, so the ingress node
    // must say so (ICMP, path MTU discovery) or fragment; 300 kB arrive whole either way.
    const bulk = (await t.client(['bulk', VIP, PORT, '300000'])).split(' ');
    expect(PODS).toContain(bulk[0]);
    expect(bulk.slice(1)).toEqual(['192.0.2.2', VIP]);
    // No tunnel interface per endpoint: one GRE device in metadata mode on each ingress node.
    const links = (await lab.exec('n1', ['ip', '-d', '-o', 'link', 'show', 'type', 'gre'])).stdout.trim().split('\n');
    const ours = links.filter((l) => / weft-/.test(l));
    expect(ours.map((l) => l.split(':')[1]?.trim().split('@')[0])).toEqual(['weft-gre0']);
    expect(ours[0]).toContain('external');
  });

  it('200 client flows spread over all 3 endpoints, each within the balance bound', async () => {
    const counts = JSON.parse(await client(['spread', VIP, PORT, '200'])) as Record<string, number>;
    expect(Object.keys(counts).sort()).toEqual([...PODS].sort());
    // 200 flows, a third each: 66.7 ± 3σ (σ ≈ 6.7).
    for (const pod of PODS) expect(counts[pod], JSON.stringify(counts)).toBeGreaterThanOrEqual(46);
    for (const pod of PODS) expect(counts[pod], JSON.stringify(counts)).toBeLessThanOrEqual(87);
    // The ingress nodes counted them per endpoint (their nftables counters, in the status).
    // As of their last reconcile: a resync comes within seconds in the lab.
    await until('every endpoint counted', async () => {
      const packets = new Map<string, number>();
      for (const n of INGRESS) for (const e of (await status(n)).vips[0]?.endpoints ?? []) packets.set(e.address, (packets.get(e.address) ?? 0) + e.packets);
      return packets.size === 3 && [...packets.values()].every((p) => p >= 46 * 3);
    }, 120_000);
  });

  it('hitless ingress failover: n1 leaves the ECMP set, every stream keeps its pod; with per-node seeds (the control) streams break', async () => {
    const shared = await streams(50, () => lab.routeVip(VIP, ['n2']));
    await lab.routeVip(VIP, [...INGRESS]);
    expect(shared).toHaveLength(50);
    expect(shared.filter((s) => s.error !== undefined || s.pods.length !== 1)).toEqual([]);
    // Some streams did go through n1 before: they are the ones that moved (its conntrack table held them).

    await configureAll('seedPerNode', true);
    await until('per-node seeds on both ingress nodes', async () => {
      const [a, b] = await Promise.all(INGRESS.map(async (n) => (await status(n)).vips[0]?.seed));
      return a !== undefined && b !== undefined && a !== b;
    }, 120_000);
    try {
      const control = await streams(50, () => lab.routeVip(VIP, ['n2']));
      const broken = control.filter((s) => s.error !== undefined || s.pods.length !== 1);
      expect(broken.length, JSON.stringify(control)).toBeGreaterThan(0);
    } finally {
      await lab.routeVip(VIP, [...INGRESS]);
      await configureAll('seedPerNode', false);
      await until('the shared seed back', async () => {
        const [a, b] = await Promise.all(INGRESS.map(async (n) => (await status(n)).vips[0]?.seed));
        return a !== undefined && a === b;
      }, 120_000);
    }
  });

  it('an endpoint removed: only its streams move; an endpoint draining: no new flows, its open streams go on', async () => {
    const [removed, draining] = ['n4:pod', 'n3:pod2'] as const;
    const afterRemoval = await streams(30, async () => {
      await lab.declareServices([{ ...echo, endpoints: PODS.filter((p) => p !== removed).map((pod) => ({ pod })) }]);
      await ingressSees('n4:pod removed', addresses(PODS.filter((p) => p !== removed)));
    });
    for (const s of afterRemoval) {
      if (s.pods[0] === removed) continue;
      expect(s, JSON.stringify(afterRemoval)).toEqual({ pods: [s.pods[0]] });
    }
    await lab.declareServices([echo]);
    await ingressSees('all 3 again', addresses(PODS));

    const drained = await streams(30, async () => {
      await lab.declareServices([{ ...echo, endpoints: PODS.map((pod) => ({ pod, ...(pod === draining ? { ready: false, serving: true, terminating: true } : {}) })) }]);
      await ingressSees('n3:pod2 draining', { ...addresses(PODS), [addressOf(draining)]: 'draining' });
      const fresh = JSON.parse(await client(['spread', VIP, PORT, '60'])) as Record<string, number>;
      expect(fresh[draining], JSON.stringify(fresh)).toBeUndefined();
    });
    expect(drained.filter((s) => s.error !== undefined || s.pods.length !== 1)).toEqual([]);
    expect(drained.some((s) => s.pods[0] === draining)).toBe(true);
    await lab.declareServices([echo]);
    await ingressSees('all 3 active again', addresses(PODS));
  });

  it('an ingress agent killed -9 and restarted: open streams go on; a pod namespace made again with the same IP is set up again', async () => {
    const survived = await streams(30, async () => {
      await lab.killAgent('n1');
      await lab.startAgent('n1');
      await until('n1 back', async () => (await status('n1').catch(() => undefined))?.vips.length === 1, 120_000);
    });
    expect(survived.filter((s) => s.error !== undefined || s.pods.length !== 1)).toEqual([]);

    const node = lab.topology.nodes.find((n) => n.name === 'n4');
    const pod = node?.pods[0];
    if (!node || !pod) throw new Error('no n4:pod');
    // The pod is made again: a new namespace, the same address (what a re-created sandbox does). From this
    // process's mount namespace, where the lab's /run/netns is. Its server goes first: it holds the old namespace.
    t.stopServer('n4:pod');
    await execa('ip', ['-n', node.netns, 'link', 'del', pod.veth], { reject: false });
    for (const args of [['netns', 'del', pod.netns], ['netns', 'add', pod.netns], ['-n', node.netns, 'link', 'add', pod.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.netns], ['-n', node.netns, 'link', 'set', pod.veth, 'master', 'pods', 'up'], ['-n', pod.netns, 'address', 'add', `${pod.address}/24`, 'dev', 'eth0'], ['-n', pod.netns, 'link', 'set', 'eth0', 'up'], ['-n', pod.netns, 'route', 'add', 'default', 'via', node.podGateway]]) {
      const r = await execa('ip', args, { reject: false });
      expect(r.exitCode, `ip ${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    t.serve('n4:pod');
    await until('the VIP in the new namespace', async () => (await lab.exec('n4:pod', ['ip', '-o', 'address', 'show', 'dev', 'weft-gre0'])).stdout.includes(VIP), 120_000);
    const counts = JSON.parse(await client(['spread', VIP, PORT, '60'])) as Record<string, number>;
    expect(counts['n4:pod'], JSON.stringify(counts)).toBeGreaterThan(0);
  });

  it("hostile input: a VIP that is a node's address or in the pod network, a malformed annotation: refused, said and counted; the VIP that is fine still works", async () => {
    await lab.declareServices([
      echo,
      { name: 'node-vip', annotations: { 'weft.io/tunnel': lab.topology.nodes[2]?.underlay ?? '' }, endpoints: [{ pod: 'n3:pod' }] },
      { name: 'pod-net', annotations: { 'weft.io/tunnel': '198.19.3.200' }, endpoints: [{ pod: 'n3:pod' }] },
      { name: 'garbage', annotations: { 'weft.io/tunnel': '203.0.113.81,not-an-ip' }, endpoints: [{ pod: 'n3:pod' }] },
    ]);
    await until('3 refused on n1', async () => (await status('n1')).refused.length === 3, 120_000);
    const s = await status('n1');
    expect(s.refused.map((r) => r.name).sort()).toEqual(['garbage', 'node-vip', 'pod-net']);
    expect(s.vips.map((v) => v.vip)).toEqual([VIP]);
    const metrics = (await httpGet({ socket: join(lab.dir, 'n1', 'http.sock') }, '/metrics', 5000)).body;
    expect(metrics).toMatch(/weft_gre_tunnel_refused_services\{[^}]*\} 3\n/);
    expect(PODS).toContain((await client(['once', VIP, PORT, 'tcp'])).split(' ')[0]);
    await lab.declareServices([echo]);
  });
});
