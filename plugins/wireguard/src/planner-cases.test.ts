import { generateWireGuardKeyPair, type NodeInfo } from '@weft/core';
import { vettedView } from '@weft/core/testing';
import { describe, expect, it } from 'vitest';
import { WireGuardConfig } from './config.js';
import { PUBLISHED } from './facts.js';
import { type MeshPlan, planMesh } from './planner.js';

// Whole plans on named cases: every field of the plan, not a projection, so that a change anywhere in what the
// planner makes shows here. Keys are made per run; the plans name them `key(n1)`.
const names = ['n1', 'n2', 'n3', 'n4', 'laptop'];
const keys = Object.fromEntries(names.map((n) => [n, generateWireGuardKeyPair()]));
const pub = (n: string) => keys[n]?.publicKey as string;
const named = (p: MeshPlan): unknown => JSON.parse(names.reduce((text, n) => text.replaceAll(pub(n), `key(${n})`), JSON.stringify(p))) as unknown;

/** Node i: underlay 192.0.2.i, pods 198.18.i.0/24, overlay 100.64.0.i and fd77:6566:7400::i, created at i seconds. */
function node(name: string, location?: string, publishes = true): NodeInfo {
  const i = Number(name.slice(1));
  return {
    name,
    internalAddresses: [`192.0.2.${String(i)}`],
    externalAddresses: [],
    podCIDRs: [`198.18.${String(i)}.0/24`],
    labels: {},
    annotations: publishes
      ? { [PUBLISHED.publicKey]: pub(name), [PUBLISHED.endpoint]: `192.0.2.${String(i)}:51820`, [PUBLISHED.overlay]: `100.64.0.${String(i)},fd77:6566:7400::${String(i)}`, [PUBLISHED.overlaySince]: String(1000 + i) }
      : {},
    ready: true,
    location,
    createdAt: i * 1000,
  };
}

function plan(self: string, nodes: NodeInfo[], config: Record<string, unknown> = {}): unknown {
  const i = Number(self.slice(1));
  const view = vettedView({ self, nodes });
  const claimsSeen = new Map(view.nodes.map((n) => [`${n.name} 100.64.0.${n.name.slice(1)}`, 1000 + Number(n.name.slice(1))] as [string, number]));
  const self4 = `100.64.0.${String(i)}`;
  return named(
    planMesh({
      view,
      config: WireGuardConfig.parse(config),
      claimsSeen,
      self: { publicKey: pub(self), endpoint: `192.0.2.${String(i)}:51820`, overlay4: self4, overlay6: `fd77:6566:7400::${String(i)}`, overlaySince: 1000 + i },
      observed: undefined,
      now: 1_800_000_000,
    }),
  );
}

// The parts of a plan, written out.
const nets = (i: number) => [`100.64.0.${String(i)}/32`, `198.18.${String(i)}.0/24`, `fd77:6566:7400::${String(i)}/128`];
const meshNode = (i: number, location: string, leader: boolean) => ({
  name: `n${String(i)}`,
  location,
  leader,
  ready: true,
  overlay4: `100.64.0.${String(i)}`,
  endpoint: `192.0.2.${String(i)}:51820`,
  publicKey: `key(n${String(i)})`,
  networks: nets(i),
});
const peer = (i: number, kind: 'node' | 'leader', carries: string[], location?: string) => ({
  name: `n${String(i)}`,
  kind,
  publicKey: `key(n${String(i)})`,
  endpoint: `192.0.2.${String(i)}:51820`,
  endpointSource: 'published',
  allowedIPs: nets(i),
  persistentKeepalive: 0,
  ...(location !== undefined ? { location } : {}),
  carries,
});
const dev = (...dsts: string[]) => dsts.map((dst) => ({ dst, dev: 'weft-wg0' }));
const via = (gw: string, ...dsts: string[]) => dsts.map((dst) => ({ dst, via: gw }));
const byDst = (routes: { dst: string }[]) => [...routes].sort((a, b) => (a.dst < b.dst ? -1 : 1));
const own = (i: number) => [`100.64.0.${String(i)}/32`, `fd77:6566:7400::${String(i)}/128`];

describe('planner: whole plans on named cases', () => {
  it('a full mesh of three: every other node a peer carrying its own networks, all through the device', () => {
    expect(plan('n1', [node('n1'), node('n2'), node('n3')], { granularity: 'full' })).toEqual({
      granularity: 'full',
      self: 'n1',
      location: '',
      isLeader: false,
      leaders: {},
      segments: [1, 2, 3].map((i) => ({ location: '', leader: `n${String(i)}`, members: [`n${String(i)}`] })),
      peers: [peer(2, 'node', ['n2']), peer(3, 'node', ['n3'])],
      routes: byDst(dev(...nets(2), ...nets(3))),
      addresses: own(1),
      excluded: [],
      refused: [],
      nodes: [meshNode(1, '', false), meshNode(2, '', false), meshNode(3, '', false)],
      externals: [],
      discovered: {},
    });
  });

  it("two locations, seen from a follower: no peer, everything through its leader's underlay address (IPv4 only: no IPv6 underlay)", () => {
    const laptop = { name: 'laptop', publicKey: pub('laptop'), allowedIPs: ['198.51.100.9/32'] };
    expect(plan('n2', [node('n1', 'a'), node('n2', 'a'), node('n3', 'b'), node('n4', 'b')], { granularity: 'location', peers: [laptop] })).toEqual({
      granularity: 'location',
      self: 'n2',
      location: 'a',
      isLeader: false,
      leaders: { a: 'n1', b: 'n3' },
      segments: [
        { location: 'a', leader: 'n1', members: ['n1', 'n2'] },
        { location: 'b', leader: 'n3', members: ['n3', 'n4'] },
      ],
      peers: [],
      routes: byDst(via('192.0.2.1', '100.64.0.1/32', '198.18.1.0/24', '100.64.0.3/32', '198.18.3.0/24', '100.64.0.4/32', '198.18.4.0/24', '198.51.100.9/32')),
      addresses: own(2),
      excluded: [],
      refused: [],
      nodes: [meshNode(1, 'a', true), meshNode(2, 'a', false), meshNode(3, 'b', true), meshNode(4, 'b', false)],
      externals: ['laptop'],
      discovered: {},
    });
  });

  it('two locations, seen from a leader, with a node that publishes nothing yet: pending, out of the other leader\'s networks', () => {
    expect(plan('n1', [node('n1', 'a'), node('n2', 'a'), node('n3', 'b'), node('n4', 'b', false)], { granularity: 'location' })).toEqual({
      granularity: 'location',
      self: 'n1',
      location: 'a',
      isLeader: true,
      leaders: { a: 'n1', b: 'n3' },
      segments: [
        { location: 'a', leader: 'n1', members: ['n1', 'n2'] },
        { location: 'b', leader: 'n3', members: ['n3'] },
      ],
      peers: [peer(3, 'leader', ['n3'], 'b')],
      routes: byDst([...via('192.0.2.2', '100.64.0.2/32', '198.18.2.0/24'), ...dev(...nets(3))]),
      addresses: own(1),
      excluded: [{ node: 'n4', kind: 'pending', reason: 'no WireGuard public key published yet' }],
      refused: [],
      nodes: [meshNode(1, 'a', true), meshNode(2, 'a', false), meshNode(3, 'b', true)],
      externals: [],
      discovered: {},
    });
  });
});
