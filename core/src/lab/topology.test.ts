import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../config/load.js';
import { nodeInfo } from '../discovery/kubernetes-source.js';
import { definePlugin } from '../api/plugin.js';
import { duration, z } from '../api/schema.js';
import { labAnnotations, labNodeObject, labPluginDefaults, nodeConfigText } from './lab.js';
import { checkLabOptions, cutRuleset, LAB_API, labTopology, locationOfNode, natRuleset } from './topology.js';

// A plugin with lab defaults, as a distribution's would declare them: the lab knows plugins only by what they declare.
const meshy = definePlugin({
  name: 'meshy',
  apiVersion: '2',
  description: 'a plugin with lab defaults',
  config: z.strictObject({ heartbeat: duration().default(60_000) }),
  lab: { config: { heartbeat: '5s' }, annotations: ({ nat }): Record<string, string> => (nat ? { 'weft.io/meshy-keepalive': '5' } : {}) },
  setup: () => ({ reconcile: () => Promise.resolve() }),
});
const resolvePlugin = () => Promise.resolve(meshy);

describe('lab options', () => {
  it.each([
    [{ name: 'lab', nodes: 3, locations: 1, nat: false }, []],
    [{ name: 'Lab', nodes: 3, locations: 1, nat: false }, ['lab name: expected 1-10 lowercase letters and digits starting with a letter, got "Lab"']],
    [{ name: 'a-b', nodes: 3, locations: 1, nat: false }, ['lab name: expected 1-10 lowercase letters and digits starting with a letter, got "a-b"']],
    [{ name: 'lab', nodes: 0, locations: 1, nat: false }, ['--nodes: expected an integer 1-60, got 0', '--locations: 1 locations need at least as many nodes, got 0']],
    [{ name: 'lab', nodes: 61, locations: 1, nat: false }, ['--nodes: expected an integer 1-60, got 61']],
    [{ name: 'lab', nodes: 2, locations: 3, nat: false }, ['--locations: 3 locations need at least as many nodes, got 2']],
    [{ name: 'lab', nodes: 3, locations: 9, nat: false }, ['--locations: expected an integer 1-8, got 9']],
    [{ name: 'lab', nodes: 3, locations: 1, nat: true }, ['--nat: needs at least 2 locations (the first is never behind NAT)']],
    [{ name: 'lab', nodes: 3, locations: 1, nat: false, discovery: 'kubernetes' as const }, []],
    [{ name: 'lab', nodes: 3, locations: 1, nat: false, discovery: 'etcd' as unknown as 'kubernetes' }, ['--discovery: expected directory or kubernetes, got "etcd"']],
  ])('%j → %j', (options, problems) => {
    expect(checkLabOptions(options)).toEqual(problems);
  });

  it('refuses to plan invalid options, naming every problem', () => {
    expect(() => labTopology({ name: 'X', nodes: 0, locations: 1, nat: true })).toThrow(/lab name[\s\S]*--nodes[\s\S]*--nat/);
  });

  it('fills locations in contiguous blocks, n1 in the first', () => {
    expect([1, 2, 3].map((i) => locationOfNode(i, 3, 2))).toEqual([1, 1, 2]);
    expect([1, 2, 3, 4, 5, 6].map((i) => locationOfNode(i, 6, 3))).toEqual([1, 1, 2, 2, 3, 3]);
    expect([1, 2, 3, 4, 5].map((i) => locationOfNode(i, 5, 5))).toEqual([1, 2, 3, 4, 5]);
  });
});

describe('lab topology', () => {
  it('one location: a switch, nodes with an underlay address, a pod bridge and a pod; no router', () => {
    const t = labTopology({ name: 'lab', nodes: 3, locations: 1, nat: false });
    expect(t.namespaces).toEqual(['wlab-lab-sw1', 'wlab-lab-n1', 'wlab-lab-n1-pod', 'wlab-lab-n2', 'wlab-lab-n2-pod', 'wlab-lab-n3', 'wlab-lab-n3-pod']);
    expect(t.routerNetns).toBeUndefined();
    expect(t.nodes.map((n) => [n.name, n.location, n.underlay, n.gateway, n.podCIDR, n.podGateway, n.pod, n.natAddress])).toEqual([
      ['n1', 'loc1', '198.18.1.11', undefined, '198.19.1.0/24', '198.19.1.1', '198.19.1.10', undefined],
      ['n2', 'loc1', '198.18.1.12', undefined, '198.19.2.0/24', '198.19.2.1', '198.19.2.10', undefined],
      ['n3', 'loc1', '198.18.1.13', undefined, '198.19.3.0/24', '198.19.3.1', '198.19.3.10', undefined],
    ]);
    const n1 = t.steps.find((s) => s.netns === 'wlab-lab-n1' && s.kind === 'ip');
    expect(n1).toEqual({
      kind: 'ip',
      netns: 'wlab-lab-n1',
      lines: [
        'link set lo up',
        'link add eth0 type veth peer name n1 netns wlab-lab-sw1',
        'addr add 198.18.1.11/24 dev eth0',
        'link set eth0 up',
        'link add pods type bridge',
        'addr add 198.19.1.1/24 dev pods',
        'link set pods up',
        'link add pod0 type veth peer name eth0 netns wlab-lab-n1-pod',
        'link set pod0 master pods',
        'link set pod0 up',
      ],
    });
    expect(t.steps.filter((s) => s.kind === 'sysctl').map((s) => s.netns)).toEqual(['wlab-lab-n1', 'wlab-lab-n2', 'wlab-lab-n3']);
    expect(t.steps.some((s) => s.kind === 'nft')).toBe(false);
  });

  it('locations behind NAT: a router, a NAT router per location but the first, default routes through them', () => {
    const t = labTopology({ name: 'x', nodes: 4, locations: 3, nat: true });
    expect(t.nodes.map((n) => [n.name, n.location, n.underlay, n.gateway, n.natAddress])).toEqual([
      ['n1', 'loc1', '198.18.1.11', '198.18.1.1', undefined],
      ['n2', 'loc1', '198.18.1.12', '198.18.1.1', undefined],
      ['n3', 'loc2', '198.18.2.13', '198.18.2.1', '203.0.113.10'],
      ['n4', 'loc3', '198.18.3.14', '198.18.3.1', '203.0.113.14'],
    ]);
    expect(t.namespaces.slice(0, 6)).toEqual(['wlab-x-sw1', 'wlab-x-sw2', 'wlab-x-sw3', 'wlab-x-rt', 'wlab-x-nat2', 'wlab-x-nat3']);
    const order = t.steps.map((s) => `${s.kind} ${s.netns}`);
    // The router's own legs exist before the NAT routers create theirs into it, and are addressed after.
    expect(order.indexOf('ip wlab-x-rt')).toBeLessThan(order.indexOf('ip wlab-x-nat2'));
    expect(order.lastIndexOf('ip wlab-x-rt')).toBeGreaterThan(order.indexOf('ip wlab-x-nat3'));
    const rt = t.steps.filter((s) => s.kind === 'ip' && s.netns === 'wlab-x-rt').flatMap((s) => (s.kind === 'ip' ? s.lines : []));
    expect(rt).toEqual([
      'link set lo up',
      'link add loc1 type veth peer name gw netns wlab-x-sw1',
      'addr add 198.18.1.1/24 dev loc1',
      'link set loc1 up',
      'addr add 203.0.113.9/30 dev loc2',
      'link set loc2 up',
      'addr add 203.0.113.13/30 dev loc3',
      'link set loc3 up',
    ]);
    // No route to a NAT location's subnet anywhere outside it: its nodes are unreachable from outside.
    expect(rt.some((l) => l.includes('198.18.2.') || l.includes('198.18.3.'))).toBe(false);
    expect(t.steps.find((s) => s.kind === 'nft' && s.netns === 'wlab-x-nat2')).toEqual({ kind: 'nft', netns: 'wlab-x-nat2', ruleset: natRuleset() });
    expect(natRuleset()).toContain('oifname "wan" masquerade');
    const n3 = t.steps.find((s) => s.kind === 'ip' && s.netns === 'wlab-x-n3');
    expect(n3?.kind === 'ip' && n3.lines.at(-1)).toBe('route add default via 198.18.2.1');
  });

  it('with the kubernetes source: an API server namespace on the first switch, routed to from the other locations', () => {
    const one = labTopology({ name: 'k', nodes: 2, locations: 1, nat: false, discovery: 'kubernetes' });
    expect(one.apiNetns).toBe('wlab-k-api');
    expect(one.namespaces).toContain('wlab-k-api');
    expect(one.steps.find((s) => s.netns === 'wlab-k-api')).toEqual({
      kind: 'ip',
      netns: 'wlab-k-api',
      lines: ['link set lo up', 'link add eth0 type veth peer name api netns wlab-k-sw1', 'addr add 198.18.1.2/24 dev eth0', 'link set eth0 up'],
    });
    expect(one.steps).toContainEqual({ kind: 'ip', netns: 'wlab-k-sw1', lines: ['link set api master br0', 'link set api up'] });
    // Not a node's address, nor a gateway's.
    expect(one.nodes.map((n) => n.underlay)).not.toContain(LAB_API.address);
    const nat = labTopology({ name: 'k', nodes: 3, locations: 2, nat: true, discovery: 'kubernetes' });
    const api = nat.steps.find((s) => s.netns === 'wlab-k-api');
    expect(api?.kind === 'ip' && api.lines.at(-1)).toBe('route add default via 198.18.1.1');
    expect(labTopology({ name: 'k', nodes: 2, locations: 1, nat: false }).apiNetns).toBeUndefined();
  });

  it('locations without NAT are routed to each other', () => {
    const t = labTopology({ name: 'x', nodes: 2, locations: 2, nat: false });
    expect(t.namespaces).not.toContain('wlab-x-nat2');
    const rt = t.steps.filter((s) => s.kind === 'ip' && s.netns === 'wlab-x-rt').flatMap((s) => (s.kind === 'ip' ? s.lines : []));
    expect(rt).toContain('addr add 198.18.2.1/24 dev loc2');
  });
});

describe('lab files', () => {
  it('cuts by dropping in, out and forwarded packets of the peers; an empty cut removes the table', () => {
    const text = cutRuleset(['198.18.1.12', '198.18.1.12', '203.0.113.10']);
    expect(text).toContain('table inet wlab-cut\ndelete table inet wlab-cut\n');
    expect(text).toContain('type filter hook input priority -10;\n    ip saddr { 198.18.1.12, 203.0.113.10 } drop\n    ip daddr { 198.18.1.12, 203.0.113.10 } drop');
    expect(text.match(/hook (\w+)/g)).toEqual(['hook input', 'hook output', 'hook forward']);
    expect(cutRuleset([])).toBe('table inet wlab-cut\ndelete table inet wlab-cut\n');
  });

  it("writes each node's config with the directory source, the lab settings and a socket; it is valid", async () => {
    const t = labTopology({ name: 'lab', nodes: 2, locations: 1, nat: false });
    const n2 = t.nodes[1];
    if (!n2) throw new Error('no n2');
    const text = nodeConfigText(t, '/run/weft-lab/lab', n2, { plugins: labPluginDefaults([meshy]), annotations: labAnnotations([meshy], t.nodes) });
    const config = await loadConfigText(text, '/run/weft-lab/lab/n2/weft.yaml', { env: {}, resolvePlugin });
    expect(config.core.node).toEqual({ name: 'n2', stateDir: '/run/weft-lab/lab/n2/state' });
    expect(config.core.discovery.source).toBe('directory');
    expect(config.core.discovery.directory).toMatchObject({ path: '/run/weft-lab/lab/nodes', rescan: 2000, self: { internalAddresses: ['198.18.1.12'], podCIDRs: ['198.19.2.0/24'], labels: { 'topology.kubernetes.io/region': 'loc1' } } });
    expect(config.core.reconcile.resync).toBe(5000);
    expect(config.core.http).toMatchObject({ listen: '0.0.0.0:9471', socket: '/run/weft-lab/lab/n2/http.sock' });
    expect(config.plugins.map((p) => [p.name, p.config])).toEqual([['meshy', { heartbeat: 5000 }]]);
    const custom = nodeConfigText(t, '/run/weft-lab/lab', n2, { reconcile: { resync: '1m' }, log: { level: 'debug' }, plugins: {}, annotations: {} });
    const c2 = await loadConfigText(custom, 'x.yaml', { env: {} });
    expect([c2.core.reconcile.resync, c2.core.log.level, c2.plugins]).toEqual([60000, 'debug', []]);
  });

  it("with the kubernetes source: each node's config names the lab's kubeconfig; its Node object is what a kubelet registers", async () => {
    const t = labTopology({ name: 'k', nodes: 3, locations: 2, nat: true, discovery: 'kubernetes' });
    const n3 = t.nodes[2];
    if (!n3) throw new Error('no n3');
    const annotations = labAnnotations([meshy], t.nodes);
    // Only n3 sits behind NAT (the last node of each location but the first).
    expect(annotations).toEqual({ n3: { 'weft.io/meshy-keepalive': '5' } });
    const config = await loadConfigText(nodeConfigText(t, '/run/weft-lab/k', n3, { plugins: {}, annotations }), 'n3.yaml', { env: {} });
    expect(config.core.discovery.source).toBe('kubernetes');
    expect(config.core.discovery.kubernetes.kubeconfig).toBe('/run/weft-lab/k/kubeconfig');
    expect(labNodeObject(n3, annotations.n3)).toEqual({
      metadata: {
        name: 'n3',
        labels: { 'kubernetes.io/hostname': 'n3', 'topology.kubernetes.io/region': 'loc2' },
        annotations: { 'weft.io/meshy-keepalive': '5' },
      },
      spec: { podCIDR: '198.19.3.0/24', podCIDRs: ['198.19.3.0/24'] },
      status: { addresses: [{ type: 'InternalIP', address: '198.18.2.13' }, { type: 'Hostname', address: 'n3' }], conditions: [{ type: 'Ready', status: 'True' }] },
    });
    // What the kubernetes source makes of it: the same node the directory source would describe.
    const node = nodeInfo(labNodeObject(n3, annotations.n3));
    expect([node.internalAddresses, node.podCIDRs, node.labels['topology.kubernetes.io/region']]).toEqual([['198.18.2.13'], ['198.19.3.0/24'], 'loc2']);
  });
});

describe('lab annotations from plugins', () => {
  it('refuses a key outside weft.io/ or a long value, naming the plugin and the node', () => {
    const t = labTopology({ name: 'lab', nodes: 1, locations: 1, nat: false });
    const bad = (annotations: Record<string, string>) => definePlugin({ ...meshy, lab: { annotations: () => annotations } });
    expect(() => labAnnotations([bad({ 'example.com/x': '1' })], t.nodes)).toThrow('plugin "meshy": lab.annotations for n1: "example.com/x" is not a weft.io/ annotation with a value of at most 256 characters');
    expect(() => labAnnotations([bad({ 'weft.io/x': 'y'.repeat(257) })], t.nodes)).toThrow('lab.annotations for n1');
    expect(labAnnotations([bad({ 'weft.io/x': 'y' })], t.nodes)).toEqual({ n1: { 'weft.io/x': 'y' } });
  });
});

describe('pods per node and the outside client', () => {
  it('several pods per node on the node bridge; a client behind a router (even with one location) that spreads VIPs by L4 ECMP', () => {
    const t = labTopology({ name: 'gt', nodes: 2, locations: 1, nat: false, pods: 3, client: true });
    expect(t.routerNetns).toBe('wlab-gt-rt');
    expect(t.clientNetns).toBe('wlab-gt-client');
    const n2 = t.nodes[1];
    expect(n2?.gateway).toBe('198.18.1.1');
    expect(n2?.pods).toEqual([
      { name: 'pod', netns: 'wlab-gt-n2-pod', address: '198.19.2.10', veth: 'pod0' },
      { name: 'pod2', netns: 'wlab-gt-n2-pod2', address: '198.19.2.11', veth: 'pod1' },
      { name: 'pod3', netns: 'wlab-gt-n2-pod3', address: '198.19.2.12', veth: 'pod2' },
    ]);
    expect(n2?.pod).toBe('198.19.2.10');
    expect(t.namespaces).toEqual(expect.arrayContaining(['wlab-gt-client', 'wlab-gt-n2-pod3']));
    const steps = JSON.stringify(t.steps);
    expect(steps).toContain('link add pod2 type veth peer name eth0 netns wlab-gt-n2-pod3');
    expect(steps).toContain('addr add 192.0.2.2/24 dev eth0');
    expect(t.steps).toContainEqual({ kind: 'sysctl', netns: 'wlab-gt-rt', settings: { 'net.ipv4.ip_forward': '1', 'net.ipv4.fib_multipath_hash_policy': '1', 'net.ipv6.fib_multipath_hash_policy': '1' } });
    // Without them, the lab is what it was: one pod, no router for one location.
    const plain = labTopology({ name: 'gt', nodes: 2, locations: 1, nat: false });
    expect([plain.routerNetns, plain.clientNetns, plain.nodes[0]?.gateway, plain.nodes[0]?.pods.length]).toEqual([undefined, undefined, undefined, 1]);
    expect(checkLabOptions({ name: 'gt', nodes: 2, locations: 1, nat: false, pods: 9 })).toEqual(['--pods: expected an integer 1-8, got 9']);
  });
});
