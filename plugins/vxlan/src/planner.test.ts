import type { NodeInfo } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { VxlanConfig } from './config.js';
import { VTEP_ANNOTATION, vtepMAC } from './facts.js';
import { desiredState, FLOOD_MAC, overhead, planOverlay, planSegments, type SelfVtep } from './planner.js';

const node = (name: string, o: Partial<NodeInfo> & { vtep?: string } = {}): NodeInfo => {
  const i = Number(name.slice(1));
  const underlay = o.internalAddresses?.[0] ?? `198.18.1.${String(10 + i)}`;
  return {
    name,
    internalAddresses: [underlay],
    externalAddresses: [],
    podCIDRs: [`198.19.${String(i)}.0/24`],
    labels: {},
    annotations: o.vtep === undefined ? { [VTEP_ANNOTATION]: `${vtepMAC(name, 1)},${underlay}` } : o.vtep === '' ? {} : { [VTEP_ANNOTATION]: o.vtep },
    ready: true,
    location: undefined,
    createdAt: 1000 + i,
    ...o,
  };
};

const selfOf = (n: NodeInfo, networks = ['198.18.1.0/24']): SelfVtep => ({
  name: n.name,
  mac: vtepMAC(n.name, 1),
  underlay: n.internalAddresses[0] as string,
  location: n.location,
  podCIDRs: n.podCIDRs,
  networks,
});

const plan = (nodes: NodeInfo[], o: { directRouting?: boolean; networks?: string[] } = {}) =>
  planOverlay({ nodes, self: selfOf(nodes[0] as NodeInfo, o.networks), config: { directRouting: o.directRouting ?? true }, podNetworks: ['198.19.0.0/16', 'fd19::/48'] });
const paths = (p: ReturnType<typeof plan>) => Object.fromEntries(p.peers.map((x) => [x.name, x.path]));
const settings = { interface: 'weft-vx0', vni: 1, port: 4789, mtu: 1450, segmentMtu: 1450, segmentLocal: '198.18.1.11', bridges: new Set<string>() };

describe('the overlay plan', () => {
  it('routes peers on the same subnet directly, and encapsulates the others', () => {
    const nodes = [node('n1'), node('n2'), node('n3', { internalAddresses: ['198.18.2.13'] })];
    const p = plan(nodes);
    expect(paths(p)).toEqual({ n2: 'same subnet', n3: 'other subnet' });
    const st = desiredState(p, [], settings);
    expect(st.routes).toEqual([
      { dst: '198.19.2.0/24', via: '198.18.1.12' },
      { dst: '198.19.3.0/24', via: '198.19.3.0', dev: 'weft-vx0', onlink: true },
    ]);
    expect(st.fdb).toEqual([{ dev: 'weft-vx0', lladdr: vtepMAC('n3', 1), dst: '198.18.2.13' }]);
    expect(st.neighbours).toEqual([{ dev: 'weft-vx0', address: '198.19.3.0', lladdr: vtepMAC('n3', 1) }]);
    expect(st.links).toEqual([{ kind: 'vxlan', name: 'weft-vx0', vni: 1, port: 4789, local: '198.18.1.11', learning: false, address: vtepMAC('n1', 1), mtu: 1450 }]);
    expect(st.addresses).toEqual([{ dev: 'weft-vx0', address: '198.19.1.0/32' }]);
  });

  it('encapsulates everything with direct routing off', () => {
    const p = plan([node('n1'), node('n2')], { directRouting: false });
    expect(paths(p)).toEqual({ n2: 'direct routing off' });
    expect(desiredState(p, [], settings).routes).toEqual([{ dst: '198.19.2.0/24', via: '198.19.2.0', dev: 'weft-vx0', onlink: true }]);
  });

  it('never routes directly across locations, even on a subnet of the same numbers (two sites may reuse one)', () => {
    const p = plan([node('n1', { location: 'a' }), node('n2', { location: 'a' }), node('n3', { location: 'b' })]);
    expect(paths(p)).toEqual({ n2: 'same subnet', n3: 'other location' });
  });

  it('dual stack over an IPv4 underlay: the IPv4 pod CIDR direct, the IPv6 one through the VTEP', () => {
    const dual = (name: string, i: number) => node(name, { podCIDRs: [`198.19.${String(i)}.0/24`, `fd19::${String(i)}:0/112`] });
    const p = plan([dual('n1', 1), dual('n2', 2)]);
    expect(p.peers[0]?.direct).toEqual(['198.19.2.0/24']);
    expect(p.peers[0]?.encapsulated).toEqual(['fd19::2:0/112']);
    const st = desiredState(p, [], settings);
    expect(st.addresses).toEqual([
      { dev: 'weft-vx0', address: '198.19.1.0/32' },
      { dev: 'weft-vx0', address: 'fd19::1:0/128' },
    ]);
    expect(st.neighbours).toEqual([{ dev: 'weft-vx0', address: 'fd19::2:0', lladdr: vtepMAC('n2', 1) }]);
    expect(st.routes).toContainEqual({ dst: 'fd19::2:0/112', via: 'fd19::2:0', dev: 'weft-vx0', onlink: true });
    expect(st.sysctls).toEqual([
      { key: 'net.ipv4.ip_forward', value: '1' },
      { key: 'net.ipv6.conf.all.forwarding', value: '1' },
    ]);
  });

  it('an IPv6 underlay: VTEPs on IPv6 addresses, 70 bytes of overhead', () => {
    const v6 = (name: string, i: number) => node(name, { internalAddresses: [`2001:db8:1::${String(i)}`] });
    const p = plan([v6('n1', 1), v6('n2', 2)], { networks: ['2001:db8:1::/64'] });
    expect(p.peers.map((x) => [x.name, x.underlay, x.path])).toEqual([['n2', '2001:db8:1::2', 'other family']]);
    expect(overhead('2001:db8:1::1')).toBe(70);
    expect(overhead('198.18.1.11')).toBe(50);
    // The IPv4 pod CIDR cannot be routed via an IPv6 next hop: it goes through the VTEP.
    expect(desiredState(p, [], settings).fdb).toEqual([{ dev: 'weft-vx0', lladdr: vtepMAC('n2', 1), dst: '2001:db8:1::2' }]);
  });

  it('a peer that moved to another underlay address: only its FDB entry differs', () => {
    const before = desiredState(plan([node('n1'), node('n3', { internalAddresses: ['198.18.2.13'] })]), [], settings);
    const after = desiredState(plan([node('n1'), node('n3', { internalAddresses: ['198.18.3.13'] })]), [], settings);
    expect({ ...after, fdb: [] }).toEqual({ ...before, fdb: [] });
    expect(after.fdb).toEqual([{ dev: 'weft-vx0', lladdr: vtepMAC('n3', 1), dst: '198.18.3.13' }]);
  });

  describe('hostile or broken peer data: that peer is left out and said why; the others are unharmed', () => {
    const cases: [string, Partial<NodeInfo> & { vtep?: string }, RegExp][] = [
      ['a multicast MAC', { vtep: '01:00:5e:00:00:01,198.18.1.12' }, /not a unicast MAC/],
      ['the all-zero MAC', { vtep: '00:00:00:00:00:00,198.18.1.12' }, /not a unicast MAC/],
      ['garbage', { vtep: 'hello' }, /expected "MAC,IP"/],
      ['an address that is not an address', { vtep: '02:00:00:00:00:02,999.1.1.1' }, /not an IP address/],
      ["another node's address", { vtep: '02:00:00:00:00:02,198.18.1.13' }, /not one of the node's addresses/],
      ['an address in a pod CIDR', { internalAddresses: ['198.19.3.10'], vtep: '02:00:00:00:00:02,198.19.3.10' }, /lies in the pod network/],
      ['this node\'s own MAC', { vtep: `${vtepMAC('n1', 1)},198.18.1.12` }, /is this node's/],
      ['an IPv6 VTEP beside IPv4 ones', { internalAddresses: ['198.18.1.12', '2001:db8::2'], vtep: '02:00:00:00:00:02,2001:db8::2' }, /IPv6, this node's on IPv4/],
      ['an oversized annotation', { vtep: `02:00:00:00:00:02,${'1'.repeat(200)}` }, /more than 100/],
    ];
    it.each(cases)('%s', (_what, o, reason) => {
      const p = plan([node('n1'), node('n2', o), node('n3')]);
      expect(p.peers.map((x) => x.name)).toEqual(['n3']);
      expect(p.excluded).toEqual([{ node: 'n2', kind: 'invalid', reason: expect.stringMatching(reason) as string }]);
    });

    it('a node that has not published yet is pending, not invalid', () => {
      expect(plan([node('n1'), node('n2', { vtep: '' })]).excluded).toEqual([{ node: 'n2', kind: 'pending', reason: 'no VTEP published yet' }]);
    });

    it('a MAC two nodes publish: the older node keeps it; equally old, neither does', () => {
      const mac = vtepMAC('n2', 1);
      const copy = node('n3', { vtep: `${mac},198.18.1.13` });
      expect(plan([node('n1'), node('n2'), copy]).peers.map((x) => x.name)).toEqual(['n2']);
      const older = { ...copy, createdAt: 1 };
      expect(plan([node('n1'), node('n2'), older]).peers.map((x) => x.name)).toEqual(['n3']);
      const tie = { ...copy, createdAt: 1002 };
      const p = plan([node('n1'), node('n2'), tie]);
      expect(p.peers).toEqual([]);
      expect(p.excluded.map((x) => x.reason)).toEqual([expect.stringMatching(/equally old: neither/), expect.stringMatching(/equally old: neither/)]);
    });
  });
});

describe('the segments plan', () => {
  const seg = (o: Record<string, unknown> = {}) => VxlanConfig.parse({ mode: 'segments', segments: [{ name: 'lab', vni: 100, nodeSelector: { 'weft.io/seg': 'lab' }, ...o }] }).segments;
  const labelled = (name: string) => node(name, { labels: { 'weft.io/seg': 'lab' } });
  const underlayOf = (n: NodeInfo) => n.internalAddresses[0];

  it('members replicate to every other member: a flooding entry and one for its MAC each', () => {
    const [s] = planSegments({ nodes: [labelled('n1'), labelled('n2'), node('n3'), labelled('n4')], self: 'n1', segments: seg(), underlayOf });
    expect(s?.member).toBe(true);
    expect(s?.peers.map((p) => p.name)).toEqual(['n2', 'n4']);
    const st = desiredState(undefined, s ? [s] : [], settings);
    expect(st.links).toEqual([{ kind: 'vxlan', name: 'weft-vxlab', vni: 100, port: 4789, local: '198.18.1.11', learning: false, address: vtepMAC('n1', 100), mtu: 1450 }]);
    expect(st.fdb).toEqual([
      { dev: 'weft-vxlab', lladdr: FLOOD_MAC, dst: '198.18.1.12' },
      { dev: 'weft-vxlab', lladdr: vtepMAC('n2', 100), dst: '198.18.1.12' },
      { dev: 'weft-vxlab', lladdr: FLOOD_MAC, dst: '198.18.1.14' },
      { dev: 'weft-vxlab', lladdr: vtepMAC('n4', 100), dst: '198.18.1.14' },
    ]);
    expect(st.addresses).toEqual([]);
  });

  it('a node the selector does not pick has no interface for the segment', () => {
    const [s] = planSegments({ nodes: [node('n1'), labelled('n2')], self: 'n1', segments: seg(), underlayOf });
    expect(s?.member).toBe(false);
    expect(desiredState(undefined, s ? [s] : [], settings).links).toEqual([]);
  });

  it('pool addresses: one each, distinct, the same whoever computes them; a per-node address replaces the pool\'s', () => {
    const nodes = Array.from({ length: 40 }, (_, i) => labelled(`n${String(i + 1)}`));
    const segs = seg({ addresses: { pools: ['10.200.0.0/24', 'fd20::/64'], nodes: { n2: ['10.201.0.2/24'] } } });
    const all = nodes.map((n) => planSegments({ nodes, self: n.name, segments: segs, underlayOf })[0]?.addresses);
    expect(all[1]).toEqual(['10.201.0.2/24']);
    const v4 = all.filter((_, i) => i !== 1).map((a) => a?.[0]);
    expect(new Set(v4).size).toBe(39);
    for (const a of v4) expect(a).toMatch(/^10\.200\.0\.(\d+)\/24$/);
    expect(planSegments({ nodes: [...nodes].reverse(), self: 'n7', segments: segs, underlayOf })[0]?.addresses).toEqual(all[6]);
  });

  it('a bridge of its own is made and holds the addresses; an operator\'s is attached to only when it exists', () => {
    const own = planSegments({ nodes: [labelled('n1'), labelled('n2')], self: 'n1', segments: seg({ bridge: 'weft-vxbr', addresses: { nodes: { n1: ['10.9.0.1/24'] } } }), underlayOf });
    const st = desiredState(undefined, own, settings);
    expect(st.links?.map((l) => [l.kind, l.name, l.master])).toEqual([
      ['bridge', 'weft-vxbr', undefined],
      ['vxlan', 'weft-vxlab', 'weft-vxbr'],
    ]);
    expect(st.addresses).toEqual([{ dev: 'weft-vxbr', address: '10.9.0.1/24' }]);
    const theirs = planSegments({ nodes: [labelled('n1'), labelled('n2')], self: 'n1', segments: seg({ bridge: 'br0' }), underlayOf });
    expect(desiredState(undefined, theirs, settings).links?.map((l) => l.master)).toEqual([undefined]);
    expect(desiredState(undefined, theirs, { ...settings, bridges: new Set(['br0']) }).links?.map((l) => l.master)).toEqual(['br0']);
  });

  it('over the mesh: members without an overlay address yet are pending', () => {
    const overlayOf = (n: NodeInfo) => (n.name === 'n3' ? undefined : `100.64.0.${n.name.slice(1)}`);
    const [s] = planSegments({ nodes: [labelled('n1'), labelled('n2'), labelled('n3')], self: 'n1', segments: seg(), underlayOf: overlayOf });
    expect(s?.peers.map((p) => [p.name, p.underlay])).toEqual([['n2', '100.64.0.2']]);
    expect(s?.excluded).toEqual([{ node: 'n3', kind: 'pending', reason: expect.stringMatching(/no underlay address/) as string }]);
  });
});
