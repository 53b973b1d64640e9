import { canonicalNetwork, type ClusterView, generateWireGuardKeyPair, type NodeInfo, type WireGuardDeviceStatus } from '@weft/core';
import { vettedView } from '@weft/core/testing';
import { describe, expect, it } from 'vitest';
import { WireGuardConfig } from './config.js';
import { IGNORED_LEADER_ANNOTATION, LEADER_LABEL, OPERATOR, PUBLISHED } from './facts.js';
import { createPlanner, desiredState, electLeader, type LeaderRules, type MeshPlan, planMesh, type PlanInput, type SelfFacts } from './planner.js';
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
  labels?: Record<string, string>;
  /** When the cluster first knew it (ms); default i seconds: n1 is the oldest. */
  createdAt?: number;
}

/** Node i: underlay 192.0.2.i, pods 198.18.i.0/24, overlay 100.64.0.i, all published; created at i seconds. */
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
    labels: spec.labels ?? {},
    annotations: { ...annotations, ...spec.annotations },
    ready: spec.ready ?? true,
    location: spec.location,
    createdAt: spec.createdAt ?? i * 1000,
  };
}

/** The view as the agent gives it to the plugin: every node's claims checked by the core. */
function view(self: string, nodes: NodeInfo[]): ClusterView {
  return vettedView({ self, nodes });
}

const config = (extra: Record<string, unknown> = {}) => WireGuardConfig.parse({ ...extra });

/**
 * The plan of `self`. Other nodes' overlay claims were first seen by it at the claim time they publish (the
 * ledger of an agent that watched them being made), unless `seen` says otherwise.
 */
function plan(self: string, nodes: NodeInfo[], extra: Record<string, unknown> = {}, observed?: WireGuardDeviceStatus, seen?: Record<string, number>): MeshPlan {
  const i = Number(self.replace(/\D/g, ''));
  const v = view(self, nodes);
  const claimsSeen = new Map(
    v.nodes.flatMap((n) => {
      const ip = n.annotations[PUBLISHED.overlay]?.split(',')[0];
      return ip ? [[`${n.name} ${ip}`, seen?.[n.name] ?? Number(n.annotations[PUBLISHED.overlaySince] ?? NOW)] as [string, number]] : [];
    }),
  );
  return planMesh({
    view: v,
    config: config(extra),
    claimsSeen,
    self: {
      publicKey: pub(self),
      endpoint: v.self.annotations[PUBLISHED.endpoint] ?? `${v.self.internalAddresses[0] ?? ''}:51820`,
      overlay4: `100.64.0.${String(i)}`,
      overlay6: `fd77:6566:7400::${String(i)}`,
      overlaySince: 1000 + i,
    },
    observed,
    now: NOW,
  });
}

/** What a node knows of itself, from what it published. */
function selfOf(n: NodeInfo): SelfFacts {
  const [overlay4 = '', overlay6 = ''] = (n.annotations[PUBLISHED.overlay] ?? '').split(',');
  return { publicKey: n.annotations[PUBLISHED.publicKey] as string, endpoint: n.annotations[PUBLISHED.endpoint], overlay4, overlay6, overlaySince: Number(n.annotations[PUBLISHED.overlaySince]) };
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

  const beat = (ago: number) => ({ [PUBLISHED.lastSeen]: String(NOW - ago) });
  it.each<[string, NodeInfo[], Partial<Pick<LeaderRules, 'preferred' | 'datedBy'>>, string]>([
    ['the oldest node, where the API server dates them', [node('n1', { location: 'a', createdAt: 9000 }), node('n2', { location: 'a' })], {}, 'n2'],
    ['the name where each agent dates them (the directory source): ages would differ between agents', [node('n1', { location: 'a', createdAt: 9000 }), node('n2', { location: 'a' })], { datedBy: 'agent' }, 'n1'],
    ['a public address buys nothing (a node says it of itself)', [node('n1', { location: 'a' }), node('n2', { location: 'a', external: ['203.0.113.2'] })], {}, 'n1'],
    ['weft.io/leader on itself and a name that sorts first buy nothing', [node('n1', { location: 'a' }), node('a9', { location: 'a', createdAt: 99_000, key: generateWireGuardKeyPair().publicKey, annotations: { [IGNORED_LEADER_ANNOTATION]: 'true' } })], {}, 'n1'],
    ["the operator's label, which no kubelet can set on itself", [node('n1', { location: 'a' }), node('n2', { location: 'a', labels: { [LEADER_LABEL]: 'true' } })], {}, 'n2'],
    ["the label is a node's own word in the directory source", [node('n1', { location: 'a' }), node('n2', { location: 'a', labels: { [LEADER_LABEL]: 'true' } })], { datedBy: 'agent' }, 'n1'],
    ["the config's leaders, in their order, before the label", [node('n1', { location: 'a' }), node('n2', { location: 'a', labels: { [LEADER_LABEL]: 'true' } }), node('n3', { location: 'a' })], { preferred: ['n3', 'n2'] }, 'n3'],
    ['failover: the leader is not Ready', [node('n1', { location: 'a', ready: false }), node('n2', { location: 'a' })], {}, 'n2'],
    ['failover: a preferred leader that is not Ready', [node('n1', { location: 'a', ready: false }), node('n2', { location: 'a' })], { preferred: ['n1'] }, 'n2'],
    // What a node publishes about its own liveness buys nothing either (an older version's heartbeat).
    ['a heartbeat, fresh or stale, changes nothing', [node('n1', { location: 'a', annotations: beat(400) }), node('n2', { location: 'a', annotations: beat(1) })], {}, 'n1'],
    ['a heartbeat dated in the future changes nothing', [node('n1', { location: 'a' }), node('n2', { location: 'a', annotations: beat(-86_400) })], {}, 'n1'],
    ['nobody Ready: the first of all rather than none', [node('n1', { location: 'a', ready: false }), node('n2', { location: 'a', ready: false })], {}, 'n1'],
  ])('leader: %s', (_what, members, over, leader) => {
    const facts = members.map((m) => readNode(m, config()));
    expect(electLeader(facts as never, { preferred: [], datedBy: 'cluster', ...over })?.name).toBe(leader);
    // Every node of the location agrees, and so does a node of another location (it peers with that leader).
    const v = (self: string) => vettedView({ self, nodes: [...members, node('n5', { location: 'z' })], datedBy: over.datedBy ?? 'cluster' });
    for (const m of [...members, node('n5', { location: 'z' })]) {
      expect(planMesh({ view: v(m.name), config: config({ leaders: over.preferred ?? [] }), self: selfOf(m), now: NOW }).leaders.a, m.name).toBe(leader);
    }
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
    // Handshakes renew every two minutes: a 100-s-old one is live.
    const older = { ...observed, peers: observed.peers.map((x) => ({ ...x, latestHandshake: NOW - 100 })) };
    expect(plan('n1', nodes, { granularity: 'full' }, older).peers[0]).toMatchObject({ endpoint: '203.0.113.10:51820', endpointSource: 'observed' });
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

  it("left out, and said why: overlapping the overlay ranges or another external peer, or a key a node uses", () => {
    const p = plan('n1', [node('n1'), node('n2')], {
      granularity: 'full',
      peers: [
        { ...laptop, allowedIPs: ['100.64.0.0/24'] },
        { name: 'other', publicKey: pub('n2'), allowedIPs: ['203.0.113.99/32'] },
      ],
    });
    expect(p.peers.map((x) => x.name)).toEqual(['n2']);
    expect(p.excluded).toEqual([
      { node: 'external:laptop', kind: 'invalid', reason: 'allowed IP 100.64.0.0/24 overlaps the overlay ranges or another external peer' },
      { node: 'external:other', kind: 'invalid', reason: "its public key is also n2's" },
    ]);
  });

  it("a node cannot take an external peer's addresses: its overlapping pod CIDR is not routed, the peer stays", () => {
    const p = plan('n1', [node('n1'), node('n2', { pods: ['198.18.2.0/24', '2001:db8:2::/64'] })], { granularity: 'full', peers: [{ ...laptop, allowedIPs: ['198.18.2.128/25'] }] });
    expect(p.peers.map((x) => [x.name, x.allowedIPs.join(' ')])).toEqual([
      ['laptop', '198.18.2.128/25'],
      ['n2', '100.64.0.2/32 2001:db8:2::/64 fd77:6566:7400::2/128'],
    ]);
    expect(p.refused).toEqual([{ node: 'n2', podCIDR: '198.18.2.0/24', reason: "overlaps external peer laptop's allowed IPs" }]);
    expect(routes(p).filter((r) => r.startsWith('198.18.2.'))).toEqual(['198.18.2.128/25 dev weft-wg0']);
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
    // Equal claim times: neither keeps it (never the name that sorts first), until they have moved.
    const tie = plan('n1', [node('n1'), node('n2', { overlay: '100.64.0.9', since: 400, createdAt: 1000 }), node('n3', { overlay: '100.64.0.9', since: 400, createdAt: 1000 })], { granularity: 'full' });
    expect(tie.peers.map((x) => x.allowedIPs.includes('100.64.0.9/32'))).toEqual([false, false]);
    // A claim's own date is not believed: n4 says since 0, but this node saw it long after n2's.
    const backdated = plan('n1', [node('n1'), node('n2', { overlay: '100.64.0.9', since: 3 }), node('n4', { overlay: '100.64.0.9', since: 0 })], { granularity: 'full' }, undefined, { n4: 900 });
    expect(backdated.peers.map((x) => [x.name, x.allowedIPs.includes('100.64.0.9/32')])).toEqual([['n2', true], ['n4', false]]);
  });
});

describe('planner: invalid peer data', () => {
  it('each bad peer is left out with its reason; the others are unaffected', () => {
    const nodes = [
      node('n1'),
      node('n2', { key: 'not-a-key' }),
      node('n3', { endpoint: '192.0.2.3' }),
      node('n5', { annotations: { [OPERATOR.persistentKeepalive]: 'soon', [PUBLISHED.discovered]: '{"x":1}' } }),
      node('n6', { key: false }),
      node('n7', { key: pub('n1') }),
      node('n9', { overlay: '10.0.0.9' }),
    ];
    const p = plan('n1', nodes, { granularity: 'full' });
    expect(p.peers).toEqual([]);
    expect(p.excluded.map((x) => [x.node, x.kind, x.reason])).toEqual([
      ['n2', 'invalid', 'weft.io/wireguard-public-key: expected a base64 WireGuard key, got "not-a-key"'],
      ['n3', 'invalid', 'weft.io/wireguard-endpoint: expected ip:port or [ipv6]:port, got "192.0.2.3"'],
      ['n5', 'invalid', 'weft.io/persistent-keepalive: expected seconds 0-65535, got "soon"; weft.io/wireguard-discovered-endpoints: bad entry "x": 1'],
      ['n6', 'pending', 'no WireGuard public key published yet'],
      ['n7', 'invalid', "weft.io/wireguard-public-key is also n1's (this node's own)"],
      ['n9', 'invalid', 'weft.io/wireguard-ip: "10.0.0.9" is not an address of 100.64.0.0/10 or fd77:6566:7400::/64'],
    ]);
    const good = plan('n1', [...nodes, node('n10', { internal: ['192.0.2.10'], pods: ['198.18.10.0/24'] })], { granularity: 'full' });
    expect(good.peers.map((x) => x.name)).toEqual(['n10']);
  });

  it('a bad pod CIDR costs the node that CIDR, not its place in the mesh (the core refused it; the view says why)', () => {
    const v = view('n1', [node('n1'), node('n4', { pods: ['198.18.4.0/33'] }), node('n8', { pods: ['198.18.1.128/25', '198.18.8.0/24'] })]);
    expect(v.claimProblems.filter((x) => x.outcome === 'refused').map((x) => [x.node, x.value, x.reason])).toEqual([
      ['n4', '198.18.4.0/33', 'not a CIDR'],
      ['n8', '198.18.1.128/25', "overlaps n1's 198.18.1.0/24, which the cluster knew first"],
    ]);
    const p = plan('n1', [node('n1'), node('n4', { pods: ['198.18.4.0/33'] }), node('n8', { pods: ['198.18.1.128/25', '198.18.8.0/24'] })], { granularity: 'full' });
    expect(p.peers.map((x) => [x.name, x.allowedIPs.join(' ')])).toEqual([
      ['n4', '100.64.0.4/32 fd77:6566:7400::4/128'],
      ['n8', '100.64.0.8/32 198.18.8.0/24 fd77:6566:7400::8/128'],
    ]);
  });

  it("this node's own bad annotation: no peers, and the problem said", () => {
    const p = plan('n1', [node('n1', { annotations: { [OPERATOR.persistentKeepalive]: '-1' } }), node('n2')], { granularity: 'full' });
    expect(p.peers).toEqual([]);
    expect(p.selfProblem).toBe('weft.io/persistent-keepalive: expected seconds 0-65535, got "-1"');
  });
});

/**
 * One node under an attacker's control publishes what it likes about itself. Whatever it does, the honest nodes
 * keep their peers and allowed IPs, no route goes where the hostile claim asked, and the desired state stays valid.
 */
describe('planner: a hostile node', () => {
  const honest = [node('n1'), node('n2'), node('n3')];
  /** The attacker: a working key and overlay address of its own, unless the case says otherwise. */
  const evil = (name: string, spec: NodeSpec) => node(name, { key: pub('other'), overlay: '100.64.0.66,fd77:6566:7400::66', internal: ['192.0.2.66'], ...spec });
  const baseline = plan('n1', honest, { granularity: 'full' });
  const allowed = (p: MeshPlan, name: string) => p.peers.find((x) => x.name === name)?.allowedIPs;

  it.each<[string, NodeInfo, string[]]>([
    ["claims n2's pod CIDR, with a name that sorts first", evil('a-evil1', { pods: ['198.18.2.0/24'] }), ['198.18.2.0/24']],
    ['claims an IPv6 default route and half the IPv4 space', evil('a-evil2', { pods: ['::/0', '0.0.0.0/1'] }), ['::/0', '0.0.0.0/1']],
    ['claims the underlay', evil('a-evil3', { pods: ['192.0.2.0/25'] }), ['192.0.2.0/25']],
    ['claims the overlay range', evil('a-evil4', { pods: ['100.64.0.0/24'] }), ['100.64.0.0/24']],
    ["claims n2's overlay address as its pod CIDR", evil('a-evil5', { pods: ['100.64.0.2/32'] }), ['100.64.0.2/32']],
    ["claims a network holding n3's WireGuard endpoint", evil('a-evil6', { pods: ['198.51.100.0/24'] }), ['198.51.100.0/24']],
    ["copies n2's public key", evil('a-evil7', { key: pub('n2'), pods: ['198.18.66.0/24'] }), ['198.18.66.0/24']],
    ["claims n2's overlay address, dated before anything existed", evil('a-evil8', { overlay: '100.64.0.2,fd77:6566:7400::2', since: 0, pods: ['198.18.66.0/24'] }), ['100.64.0.2/32']],
  ])('%s', (_what, evil, hostile) => {
    // The attacker joined after the honest nodes (the API server dates it), whatever its name.
    const attacker = { ...evil, createdAt: 60_000 };
    const withN3Endpoint = (n: NodeInfo) => (n.name === 'n3' ? node('n3', { endpoint: '198.51.100.3:51820' }) : n);
    const nodes = [...honest.map(withN3Endpoint), attacker];
    for (const self of ['n1', 'n2', 'n3']) {
      // This agent saw the attacker's claims only when it appeared, whatever it publishes.
      const p = plan(self, nodes, { granularity: 'full' }, undefined, { [attacker.name]: NOW });
      const before = plan(self, honest.map(withN3Endpoint), { granularity: 'full' });
      for (const h of ['n1', 'n2', 'n3'].filter((x) => x !== self)) expect(allowed(p, h), `${self}: ${h}`).toEqual(allowed(before, h));
      const dsts = p.routes.map((r) => r.dst);
      expect(new Set(dsts).size, `${self}: no route twice`).toBe(dsts.length);
      for (const h of hostile) {
        const dst = canonical(h);
        const to = p.routes.find((r) => r.dst === dst);
        const mine = before.routes.find((r) => r.dst === dst);
        expect(to, `${self}: ${h} routed for the attacker`).toEqual(mine);
      }
      expect(() => desiredState(p, config(), keys.n1?.privateKey as string, 1420)).not.toThrow();
    }
    expect(baseline.peers.length).toBe(2);
    // The attacker itself is in the mesh (a working key) unless it copied a key: the checks above are not vacuous.
    const seen = plan('n1', nodes, { granularity: 'full' }, undefined, { [attacker.name]: NOW });
    if (!_what.includes('key')) expect(seen.peers.map((x) => x.name)).toContain(attacker.name);
  });

  it('claims to lead its location (weft.io/leader, a public address, a name that sorts first, a fresh heartbeat): the leader stays', () => {
    const claimLead = { [IGNORED_LEADER_ANNOTATION]: 'true', [PUBLISHED.lastSeen]: String(NOW) };
    const attacker = { ...evil('a-evil', { location: 'a', external: ['203.0.113.66'], pods: ['198.18.66.0/24'], annotations: claimLead }), createdAt: 60_000 };
    const nodes = [node('n1', { location: 'a' }), node('n2', { location: 'a' }), node('n3', { location: 'b' }), attacker];
    for (const self of ['n1', 'n2', 'n3']) expect(plan(self, nodes).leaders.a, self).toBe('n1');
    // The leader goes NotReady: the next honest node (older than the attacker) takes over, not the attacker.
    const failed = [node('n1', { location: 'a', ready: false }), ...nodes.slice(1)];
    for (const self of ['n2', 'n3']) expect(plan(self, failed).leaders.a, self).toBe('n2');
  });

  it('a discovered-endpoints annotation over 64 KiB: that node is left out, and no one else', () => {
    const huge = { [PUBLISHED.discovered]: JSON.stringify(Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`${String(i).padStart(43, 'A')}=`, `198.51.100.1:${String(i)}`]))) };
    const nodes = [...honest, { ...evil('a-evil', { pods: ['198.18.66.0/24'], annotations: huge }), createdAt: 60_000 }];
    const p = plan('n1', nodes, { granularity: 'full' });
    expect(p.excluded.find((x) => x.node === 'a-evil')?.reason).toMatch(/weft\.io\/wireguard-discovered-endpoints: \d+ characters, more than 65536/);
    expect(p.peers.map((x) => x.name)).toEqual(['n2', 'n3']);
  });

  it('a discovered endpoint for a peer behind NAT: the oldest reporter is believed, not the first by name', () => {
    const nat = { location: 'b', annotations: { [OPERATOR.persistentKeepalive]: '25' } };
    const report = (endpoint: string) => ({ [PUBLISHED.discovered]: JSON.stringify({ [pub('n3')]: endpoint }) });
    const nodes = [
      node('n1', { location: 'a' }),
      node('n2', { location: 'a', annotations: report('203.0.113.10:40001') }),
      node('n3', nat),
      { ...evil('a-evil', { location: 'a', pods: ['198.18.66.0/24'], annotations: report('198.51.100.66:666') }), createdAt: 60_000 },
    ];
    expect(plan('n1', nodes, { granularity: 'full' }).peers.find((x) => x.name === 'n3')).toMatchObject({ endpoint: '203.0.113.10:40001', endpointSource: 'discovered' });
    // Equally old reporters who disagree: neither is believed; the peer's own endpoint stays.
    const split = [nodes[0], nodes[1], nodes[2], { ...(nodes[3] as NodeInfo), createdAt: 2000 }] as NodeInfo[];
    expect(plan('n1', split, { granularity: 'full' }).peers.find((x) => x.name === 'n3')).toMatchObject({ endpoint: '192.0.2.3:51820', endpointSource: 'published' });
  });
});

function canonical(cidr: string): string {
  return canonicalNetwork(cidr) as string;
}

describe('planner: the last plan kept while nothing it reads changed', () => {
  const nodes = [node('n1'), node('n3', { endpoint: '198.51.100.3:51820' })];
  const v = view('n1', nodes);
  const cfg = config({ granularity: 'full' });
  const self = selfOf(nodes[0] as NodeInfo);
  const claimsSeen = new Map([['n3 100.64.0.3', 1003]]);
  const seenAt = (latestHandshake: number, endpoint = '203.0.113.10:51820'): WireGuardDeviceStatus => ({
    name: 'weft-wg0',
    publicKey: pub('n1'),
    listenPort: 51820,
    peers: [{ publicKey: pub('n3'), endpoint, allowedIPs: [], latestHandshake, receiveBytes: 1, transmitBytes: 1, persistentKeepalive: 0 }],
  });
  const input = (extra: Partial<PlanInput> = {}): PlanInput => ({ view: v, config: cfg, self, claimsSeen, observed: seenAt(NOW - 30), now: NOW, ...extra });

  it('hands back the same plan for the same view, config and facts, and counters that moved change nothing', () => {
    const planner = createPlanner();
    const first = planner(input());
    expect(first).toEqual(planMesh(input()));
    const busier = seenAt(NOW - 30);
    expect(planner(input({ observed: { ...busier, peers: busier.peers.map((p) => ({ ...p, receiveBytes: 999 })) }, now: NOW + 5 }))).toBe(first);
  });

  it('plans again when anything the plan reads changes', () => {
    const planner = createPlanner();
    const first = planner(input());
    expect(first.peers[0]).toMatchObject({ endpoint: '203.0.113.10:51820', endpointSource: 'observed' });
    // The handshake goes stale with time alone: back to the published endpoint.
    const later = planner(input({ now: NOW + 600 }));
    expect(later).not.toBe(first);
    expect(later.peers[0]).toMatchObject({ endpoint: '198.51.100.3:51820', endpointSource: 'published' });
    // The peer roamed.
    expect(planner(input({ observed: seenAt(NOW - 30, '203.0.113.11:51820') })).peers[0]?.endpoint).toBe('203.0.113.11:51820');
    // A new view, this node's own facts, the claims it noted, the config: each is a new plan.
    const again = planner(input());
    expect(planner(input({ view: view('n1', [...nodes, node('n2')]) })).peers.map((p) => p.name)).toEqual(['n2', 'n3']);
    expect(planner(input())).not.toBe(again);
    expect(planner(input({ self: { ...self, overlay4: '100.64.0.9' } })).addresses[0]).toBe('100.64.0.9/32');
    expect(planner(input({ claimsSeen: new Map([['n3 100.64.0.3', 1]]) }))).not.toBe(planner(input()));
    expect(planner(input({ config: config({ granularity: 'full', persistentKeepalive: 7 }) })).peers[0]?.persistentKeepalive).toBe(7);
  });

  it('counts the time when the plan read it: a claim not noted yet is seen now', () => {
    const planner = createPlanner();
    const unnoted = input({ claimsSeen: new Map() });
    const first = planner(unnoted);
    expect(planner({ ...unnoted })).toBe(first);
    expect(planner({ ...unnoted, now: NOW + 1 })).not.toBe(first);
  });
});
