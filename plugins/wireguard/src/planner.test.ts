import { type ClusterView, generateWireGuardKeyPair, type NodeInfo, type WireGuardDeviceStatus } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { WireGuardConfig } from './config.js';
import { OPERATOR, PUBLISHED } from './facts.js';
import { desiredState, electLeader, type MeshPlan, planMesh } from './planner.js';
import { readNode } from './facts.js';

const NOW = 1_800_000_000;
const keys = Object.fromEntries([...Array.from({ length: 12 }, (_, i) => `n${String(i + 1)}`), 'laptop', 'other'].map((n) => [n, generateWireGuardKeyPair()]));
const pub = (n: string) => keys[n]?.publicKey as string;

interface NodeSpec {
  location?: string;
  internal?: string[];
  external?: string[];
  pods?: string[];
  ready?: boolean;
  /** false: publishes nothing yet. */
  key?: string | false;
  endpoint?: string;
  overlay?: string;
  since?: number;
  annotations?: Record<string, string>;
}

/** Node i: underlay 192.0.2.i, pods 198.18.i.0/24, overlay 100.64.0.i, all published. */
function node(name: string, spec: NodeSpec = {}): NodeInfo {
  const i = Number(name.replace(/\D/g, ''));
  const internal = spec.internal ?? [`192.0.2.${String(i)}`];
  const annotations: Record<string, string> = {};
  if (spec.key !== false) {
    annotations[PUBLISHED.publicKey] = spec.key ?? pub(name);
    annotations[PUBLISHED.endpoint] = spec.endpoint ?? `${internal[0] ?? ''}:51820`;
    annotations[PUBLISHED.overlay] = spec.overlay ?? `100.64.0.${String(i)},fd77:6566:7400::${String(i)}`;
    annotations[PUBLISHED.overlaySince] = String(spec.since ?? 1000 + i);
  }
  return {
    name,
    internalAddresses: internal,
    externalAddresses: spec.external ?? [],
    podCIDRs: spec.pods ?? [`198.18.${String(i)}.0/24`],
    labels: {},
    annotations: { ...annotations, ...spec.annotations },
    ready: spec.ready ?? true,
    location: spec.location,
  };
}

function view(self: string, nodes: NodeInfo[]): ClusterView {
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : 1));
  return { self: sorted.find((n) => n.name === self) as NodeInfo, nodes: sorted, revision: 1 };
}

const config = (extra: Record<string, unknown> = {}) => WireGuardConfig.parse({ ...extra });

function plan(self: string, nodes: NodeInfo[], extra: Record<string, unknown> = {}, observed?: WireGuardDeviceStatus): MeshPlan {
  const i = Number(self.replace(/\D/g, ''));
  const v = view(self, nodes);
  return planMesh({
    view: v,
    config: config(extra),
    self: {
      publicKey: pub(self),
      endpoint: `${v.self.internalAddresses[0] ?? ''}:51820`,
      overlay4: `100.64.0.${String(i)}`,
      overlay6: `fd77:6566:7400::${String(i)}`,
      overlaySince: 1000 + i,
    },
    observed,
    now: NOW,
  });
}

/** A peer as a table row. */
const row = (p: MeshPlan['peers'][number]) => [p.name, p.kind, p.endpoint, p.endpointSource, p.allowedIPs.join(' ')];
const routes = (p: MeshPlan) => p.routes.map((r) => `${r.dst} ${r.dev ? `dev ${r.dev}` : `via ${r.via ?? ''}`}`);

describe('planner: full mesh', () => {
  const nodes = [node('n1'), node('n2'), node('n3')];
  it('peers with every other node: its pod CIDRs and overlay addresses, through the interface', () => {
    const p = plan('n1', nodes, { granularity: 'full' });
    expect(p.peers.map(row)).toEqual([
      ['n2', 'node', '192.0.2.2:51820', 'published', '100.64.0.2/32 198.18.2.0/24 fd77:6566:7400::2/128'],
      ['n3', 'node', '192.0.2.3:51820', 'published', '100.64.0.3/32 198.18.3.0/24 fd77:6566:7400::3/128'],
    ]);
    expect(routes(p)).toEqual([
      '100.64.0.2/32 dev weft-wg0',
      '100.64.0.3/32 dev weft-wg0',
      '198.18.2.0/24 dev weft-wg0',
      '198.18.3.0/24 dev weft-wg0',
      'fd77:6566:7400::2/128 dev weft-wg0',
      'fd77:6566:7400::3/128 dev weft-wg0',
    ]);
    expect(p.addresses).toEqual(['100.64.0.1/32', 'fd77:6566:7400::1/128']);
    expect(p.excluded).toEqual([]);
    expect(p.isLeader).toBe(false);
  });

  it('is deterministic: the order nodes come in changes nothing', () => {
    const a = plan('n2', nodes, { granularity: 'full' });
    const b = plan('n2', [...nodes].reverse(), { granularity: 'full' });
    expect(b).toEqual(a);
  });

  it('a node that leaves is gone from the plan', () => {
    const p = plan('n1', [node('n1'), node('n3')], { granularity: 'full' });
    expect(p.peers.map((x) => x.name)).toEqual(['n3']);
    expect(routes(p).some((r) => r.includes('198.18.2.'))).toBe(false);
  });

  it('desired state: the interface with its MTU, overlay addresses, routes, the device with peers, forwarding on', () => {
    const p = plan('n1', nodes, { granularity: 'full', persistentKeepalive: 25 });
    const d = desiredState(p, config({ granularity: 'full' }), keys.n1?.privateKey as string, 1420);
    expect(d.links).toEqual([{ kind: 'wireguard', name: 'weft-wg0', mtu: 1420 }]);
    expect(d.addresses).toEqual([{ dev: 'weft-wg0', address: '100.64.0.1/32' }, { dev: 'weft-wg0', address: 'fd77:6566:7400::1/128' }]);
    expect(d.wireguard?.[0]?.peers.map((x) => [x.publicKey === pub('n2') || x.publicKey === pub('n3'), x.persistentKeepalive])).toEqual([[true, 25], [true, 25]]);
    expect(d.wireguard?.[0]?.listenPort).toBe(51820);
    expect(d.sysctls).toEqual([{ key: 'net.ipv4.ip_forward', value: '1' }, { key: 'net.ipv6.conf.all.forwarding', value: '1' }]);
  });
});

describe('planner: locations and leaders', () => {
  const nodes = [node('n1', { location: 'a' }), node('n2', { location: 'a' }), node('n3', { location: 'b' }), node('n4', { location: 'b' })];

  it('the leader peers with the other leaders, carrying their locations; its own location goes over the underlay', () => {
    const p = plan('n1', nodes);
    expect(p.leaders).toEqual({ a: 'n1', b: 'n3' });
    expect(p.isLeader).toBe(true);
    expect(p.peers.map(row)).toEqual([['n3', 'leader', '192.0.2.3:51820', 'published', '100.64.0.3/32 100.64.0.4/32 198.18.3.0/24 198.18.4.0/24 fd77:6566:7400::3/128 fd77:6566:7400::4/128']]);
    expect(p.peers[0]?.carries).toEqual(['n3', 'n4']);
    expect(routes(p)).toEqual([
      '100.64.0.2/32 via 192.0.2.2',
      '100.64.0.3/32 dev weft-wg0',
      '100.64.0.4/32 dev weft-wg0',
      '198.18.2.0/24 via 192.0.2.2',
      '198.18.3.0/24 dev weft-wg0',
      '198.18.4.0/24 dev weft-wg0',
      'fd77:6566:7400::3/128 dev weft-wg0',
      'fd77:6566:7400::4/128 dev weft-wg0',
    ]);
  });

  it('a non-leader has no peers: remote locations go through its leader on the underlay', () => {
    const p = plan('n2', nodes);
    expect(p.isLeader).toBe(false);
    expect(p.peers).toEqual([]);
    expect(routes(p)).toEqual([
      '100.64.0.1/32 via 192.0.2.1',
      '100.64.0.3/32 via 192.0.2.1',
      '100.64.0.4/32 via 192.0.2.1',
      '198.18.1.0/24 via 192.0.2.1',
      '198.18.3.0/24 via 192.0.2.1',
      '198.18.4.0/24 via 192.0.2.1',
    ]);
  });

  it.each([
    ['first by name', [node('n1', { location: 'a' }), node('n2', { location: 'a' })], 'n1'],
    ['a node with a public address', [node('n1', { location: 'a' }), node('n2', { location: 'a', external: ['203.0.113.2'] })], 'n2'],
    ['forced by weft.io/leader, over a public address', [node('n1', { location: 'a', external: ['203.0.113.1'] }), node('n2', { location: 'a', annotations: { [OPERATOR.leader]: 'true' } })], 'n2'],
    ['failover: the leader is not Ready', [node('n1', { location: 'a', ready: false }), node('n2', { location: 'a' })], 'n2'],
    ['failover: the leader stopped its heartbeat', [node('n1', { location: 'a', annotations: { [PUBLISHED.lastSeen]: String(NOW - 400) } }), node('n2', { location: 'a', annotations: { [PUBLISHED.lastSeen]: String(NOW - 10) } })], 'n2'],
    ['failover: a forced leader that is stale', [node('n1', { location: 'a', annotations: { [OPERATOR.leader]: 'true', [PUBLISHED.lastSeen]: String(NOW - 400) } }), node('n2', { location: 'a' })], 'n2'],
    ['nobody healthy: the first of all rather than none', [node('n1', { location: 'a', ready: false }), node('n2', { location: 'a', ready: false })], 'n1'],
  ])('leader: %s', (_what, members, leader) => {
    const facts = members.map((m) => readNode(m, config()));
    expect(electLeader(facts as never, NOW, 180_000)?.name).toBe(leader);
    // Every node of the location agrees.
    for (const m of members) expect(plan(m.name, [...members, node('n5', { location: 'z' })]).leaders.a).toBe(leader);
  });

  it('nodes without a location form one location of their own', () => {
    const p = plan('n3', [node('n1'), node('n2'), node('n3', { location: 'b' })]);
    expect(p.leaders).toEqual({ '': 'n1', b: 'n3' });
    expect(p.peers.map((x) => [x.name, x.carries])).toEqual([['n1', ['n1', 'n2']]]);
  });
});

describe('planner: NAT', () => {
  const nat = { location: 'b', annotations: { [OPERATOR.persistentKeepalive]: '25' } };
  it('a peer behind NAT in another location: the endpoint another node saw, not its private one', () => {
    const seen = JSON.stringify({ [pub('n3')]: '203.0.113.10:40001' });
    const nodes = [node('n1', { location: 'a' }), node('n2', { location: 'a', annotations: { [PUBLISHED.discovered]: seen } }), node('n3', nat), node('n4', nat)];
    const p = plan('n1', nodes, { granularity: 'full' });
    expect(p.peers.find((x) => x.name === 'n3')).toMatchObject({ endpoint: '203.0.113.10:40001', endpointSource: 'discovered' });
    expect(p.peers.find((x) => x.name === 'n4')).toMatchObject({ endpoint: '192.0.2.4:51820', endpointSource: 'published' });
    // Inside its own location a NATed peer is reached directly.
    expect(plan('n4', nodes, { granularity: 'full' }).peers.find((x) => x.name === 'n3')).toMatchObject({ endpoint: '192.0.2.3:51820', endpointSource: 'published' });
    // A node behind NAT keeps its mapping open: its keepalive goes on every peer.
    expect(plan('n3', nodes, { granularity: 'full' }).peers.map((x) => x.persistentKeepalive)).toEqual([25, 25, 25]);
    expect(p.peers.map((x) => x.persistentKeepalive)).toEqual([0, 0, 0]);
  });

  it('an endpoint that works now (a fresh handshake after roaming) is kept, and published as discovered', () => {
    const nodes = [node('n1', { location: 'a' }), node('n3', nat)];
    const observed: WireGuardDeviceStatus = {
      name: 'weft-wg0',
      publicKey: pub('n1'),
      listenPort: 51820,
      peers: [{ publicKey: pub('n3'), endpoint: '203.0.113.10:51820', allowedIPs: [], latestHandshake: NOW - 30, receiveBytes: 1, transmitBytes: 1, persistentKeepalive: 0 }],
    };
    const p = plan('n1', nodes, { granularity: 'full' }, observed);
    expect(p.peers[0]).toMatchObject({ endpoint: '203.0.113.10:51820', endpointSource: 'observed' });
    expect(p.discovered).toEqual({ [pub('n3')]: '203.0.113.10:51820' });
    // Handshakes renew every two minutes: a 100-s-old one is live whatever staleAfter (a leader's heartbeat) says.
    const older = { ...observed, peers: observed.peers.map((x) => ({ ...x, latestHandshake: NOW - 100 })) };
    expect(plan('n1', nodes, { granularity: 'full', staleAfter: '15s' }, older).peers[0]).toMatchObject({ endpoint: '203.0.113.10:51820', endpointSource: 'observed' });
    // A stale handshake: back to what the peer publishes, nothing discovered.
    const stale = { ...observed, peers: observed.peers.map((x) => ({ ...x, latestHandshake: NOW - 600 })) };
    const q = plan('n1', nodes, { granularity: 'full' }, stale);
    expect(q.peers[0]).toMatchObject({ endpoint: '192.0.2.3:51820', endpointSource: 'published' });
    expect(q.discovered).toEqual({});
  });
});

describe('planner: external peers', () => {
  const laptop = { name: 'laptop', publicKey: pub('laptop'), allowedIPs: ['100.127.255.1/32'], endpoint: '198.51.100.7:51820', persistentKeepalive: 0 };
  it('full: a peer of every node; location: of every leader, non-leaders route to it through their leader', () => {
    const peers = [{ ...laptop, allowedIPs: ['198.51.100.7/32'] }];
    const full = plan('n2', [node('n1'), node('n2')], { granularity: 'full', peers });
    expect(full.peers.map(row)).toContainEqual(['laptop', 'external', '198.51.100.7:51820', 'config', '198.51.100.7/32']);
    expect(routes(full)).toContain('198.51.100.7/32 dev weft-wg0');
    const nodes = [node('n1', { location: 'a' }), node('n2', { location: 'a' })];
    expect(plan('n1', nodes, { peers }).peers.map((x) => x.name)).toEqual(['laptop']);
    expect(plan('n2', nodes, { peers }).peers).toEqual([]);
    expect(routes(plan('n2', nodes, { peers }))).toContain('198.51.100.7/32 via 192.0.2.1');
  });

  it('left out, and said why: overlapping the cluster networks, or a key a node uses', () => {
    const p = plan('n1', [node('n1'), node('n2')], {
      granularity: 'full',
      peers: [
        { ...laptop, allowedIPs: ['198.18.2.0/25'] },
        { name: 'other', publicKey: pub('n2'), allowedIPs: ['203.0.113.99/32'] },
      ],
    });
    expect(p.peers.map((x) => x.name)).toEqual(['n2']);
    expect(p.excluded).toEqual([
      { node: 'external:laptop', kind: 'invalid', reason: "allowed IP 198.18.2.0/25 overlaps the cluster's pod or overlay networks" },
      { node: 'external:other', kind: 'invalid', reason: "its public key is also n2's" },
    ]);
  });
});

describe('planner: dual stack', () => {
  it('IPv6 pod CIDRs go through the tunnel, and over the underlay by the IPv6 internal address', () => {
    const ds = (n: string, i: number, location?: string) =>
      node(n, { location, internal: [`192.0.2.${String(i)}`, `2001:db8::${String(i)}`], pods: [`198.18.${String(i)}.0/24`, `2001:db8:${String(i)}::/64`] });
    const full = plan('n1', [ds('n1', 1), ds('n2', 2)], { granularity: 'full' });
    expect(full.peers[0]?.allowedIPs).toEqual(['100.64.0.2/32', '198.18.2.0/24', '2001:db8:2::/64', 'fd77:6566:7400::2/128']);
    const loc = plan('n2', [ds('n1', 1, 'a'), ds('n2', 2, 'a')]);
    expect(routes(loc)).toEqual(['100.64.0.1/32 via 192.0.2.1', '198.18.1.0/24 via 192.0.2.1', '2001:db8:1::/64 via 2001:db8::1', 'fd77:6566:7400::1/128 via 2001:db8::1']);
  });
});

describe('planner: overlay address collisions', () => {
  it('two nodes claiming one address: the older claim keeps it, the other is left out of allowed IPs until it moves', () => {
    const nodes = [node('n1'), node('n2', { overlay: '100.64.0.9,fd77:6566:7400::9', since: 500 }), node('n3', { overlay: '100.64.0.9,fd77:6566:7400::9', since: 400 })];
    const p = plan('n1', nodes, { granularity: 'full' });
    expect(p.peers.find((x) => x.name === 'n2')?.allowedIPs).toEqual(['198.18.2.0/24']);
    expect(p.peers.find((x) => x.name === 'n3')?.allowedIPs).toEqual(['100.64.0.9/32', '198.18.3.0/24', 'fd77:6566:7400::9/128']);
    // Equal claim times: the name that sorts first keeps it.
    const tie = plan('n1', [node('n1'), node('n2', { overlay: '100.64.0.9', since: 400 }), node('n3', { overlay: '100.64.0.9', since: 400 })], { granularity: 'full' });
    expect(tie.peers.map((x) => x.allowedIPs.includes('100.64.0.9/32'))).toEqual([true, false]);
  });
});

describe('planner: invalid peer data', () => {
  it('each bad peer is left out with its reason; the others are unaffected', () => {
    const nodes = [
      node('n1'),
      node('n2', { key: 'not-a-key' }),
      node('n3', { endpoint: '192.0.2.3' }),
      node('n4', { pods: ['198.18.4.0/33'] }),
      node('n5', { annotations: { [OPERATOR.persistentKeepalive]: 'soon', [PUBLISHED.discovered]: '{"x":1}' } }),
      node('n6', { key: false }),
      node('n7', { key: pub('n1') }),
      node('n8', { pods: ['198.18.1.128/25'] }),
      node('n9', { overlay: '10.0.0.9' }),
    ];
    const p = plan('n1', nodes, { granularity: 'full' });
    expect(p.peers).toEqual([]);
    expect(p.excluded.map((x) => [x.node, x.kind, x.reason])).toEqual([
      ['n2', 'invalid', 'weft.io/wireguard-public-key: expected a base64 WireGuard key, got "not-a-key"'],
      ['n3', 'invalid', 'weft.io/wireguard-endpoint: expected ip:port or [ipv6]:port, got "192.0.2.3"'],
      ['n4', 'invalid', 'pod CIDR "198.18.4.0/33": not a CIDR'],
      ['n5', 'invalid', 'weft.io/persistent-keepalive: expected seconds 0-65535, got "soon"; weft.io/wireguard-discovered-endpoints: bad entry "x": 1'],
      ['n6', 'pending', 'no WireGuard public key published yet'],
      ['n7', 'invalid', "weft.io/wireguard-public-key is also n1's"],
      ['n8', 'invalid', "pod CIDR 198.18.1.128/25 overlaps n1's 198.18.1.0/24"],
      ['n9', 'invalid', 'weft.io/wireguard-ip: "10.0.0.9" is not an address of 100.64.0.0/10 or fd77:6566:7400::/64'],
    ]);
    const good = plan('n1', [...nodes, node('n10', { internal: ['192.0.2.10'], pods: ['198.18.10.0/24'] })], { granularity: 'full' });
    expect(good.peers.map((x) => x.name)).toEqual(['n10']);
  });

  it('overlapping pod CIDRs: the same nodes left out as a pairwise check in name order would (random clusters)', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 30; round++) {
      const nodes = [node('n1', { pods: ['198.18.200.0/24'] })];
      for (let i = 2; i <= 12; i++) {
        const prefix = [22, 23, 24, 25, 26][rand(5)] as number;
        const third = rand(16);
        const fourth = prefix >= 25 ? rand(4) * 64 : 0;
        nodes.push(node(`n${String(i)}`, { pods: [`198.18.${String(third)}.${String(fourth)}/${String(prefix)}`] }));
      }
      const p = plan('n1', nodes, { granularity: 'full' });
      // The naive rule: in name order, a node whose CIDR overlaps one already accepted is left out.
      const parse = (c: string) => {
        const [ip, len] = c.split('/') as [string, string];
        const v = ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
        const size = 2 ** (32 - Number(len));
        const start = Math.floor(v / size) * size;
        return [start, start + size] as const;
      };
      const accepted: (readonly [number, number])[] = [parse('198.18.200.0/24')];
      const expected: string[] = [];
      for (const n of nodes.slice(1).sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const r = parse(n.podCIDRs[0] as string);
        if (accepted.some(([a, b]) => r[0] < b && a < r[1])) expected.push(n.name);
        else accepted.push(r);
      }
      expect(p.excluded.map((x) => x.node).sort()).toEqual(expected.sort());
    }
  });

  it("this node's own bad annotation: no peers, and the problem said", () => {
    const p = plan('n1', [node('n1', { annotations: { [OPERATOR.persistentKeepalive]: '-1' } }), node('n2')], { granularity: 'full' });
    expect(p.peers).toEqual([]);
    expect(p.selfProblem).toBe('weft.io/persistent-keepalive: expected seconds 0-65535, got "-1"');
  });
});
