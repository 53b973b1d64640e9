import { describe, expect, it } from 'vitest';
import type { NodeInfo } from '../api/cluster.js';
import { definePlugin } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { compileReads, nodeNarrower, sameData, unionReads, viewChangedFor } from './reads.js';
import { makeView } from './view.js';

const node = (name: string, extra: Partial<NodeInfo> = {}): NodeInfo => ({
  name,
  internalAddresses: ['198.18.0.1'],
  externalAddresses: [],
  podCIDRs: ['198.19.1.0/24'],
  labels: { 'kubernetes.io/hostname': name },
  annotations: { 'weft.io/wireguard-public-key': 'k', 'other.io/x': '1' },
  ready: true,
  location: undefined,
  createdAt: 1,
  ...extra,
});
const view = (nodes: NodeInfo[]) => makeView({ selfName: 'a', nodes, revision: 1 });
const wg = compileReads({ annotations: ['weft.io/wireguard-*', 'weft.io/force-endpoint'], labels: ['node-restriction.kubernetes.io/weft-leader'] });
const narrow = compileReads({ annotations: [], labels: [], fields: ['podCIDRs'] });
const everything = compileReads(undefined);
const base = view([node('a'), node('b')]);

describe('viewChangedFor: what a plugin reads', () => {
  it.each<[string, NodeInfo[], [boolean, boolean, boolean]]>([
    ['nothing', [node('a'), node('b')], [false, false, false]],
    ["another plugin's annotation", [node('a'), node('b', { annotations: { 'weft.io/wireguard-public-key': 'k', 'other.io/x': '2' } })], [false, false, true]],
    ['a label it does not read', [node('a'), node('b', { labels: { 'kubernetes.io/hostname': 'b', team: 'x' } })], [false, false, true]],
    ['an annotation under its prefix', [node('a'), node('b', { annotations: { 'weft.io/wireguard-public-key': 'k2', 'other.io/x': '1' } })], [true, false, true]],
    ['an exact annotation it reads, added', [node('a'), node('b', { annotations: { 'weft.io/wireguard-public-key': 'k', 'other.io/x': '1', 'weft.io/force-endpoint': '1.2.3.4' } })], [true, false, true]],
    ['an annotation under its prefix, removed', [node('a'), node('b', { annotations: { 'other.io/x': '1' } })], [true, false, true]],
    ['the label it reads', [node('a'), node('b', { labels: { 'kubernetes.io/hostname': 'b', 'node-restriction.kubernetes.io/weft-leader': 'true' } })], [true, false, true]],
    ['a pod CIDR', [node('a'), node('b', { podCIDRs: ['198.19.2.0/24'] })], [true, true, true]],
    ['readiness', [node('a'), node('b', { ready: false })], [true, false, true]],
    ['a node joins', [node('a'), node('b'), node('c')], [true, true, true]],
    ['a node leaves', [node('a')], [true, true, true]],
  ])('%s', (_what, nodes, [forWg, forNarrow, forAll]) => {
    const next = view(nodes);
    expect([viewChangedFor(wg, base, next), viewChangedFor(narrow, base, next), viewChangedFor(everything, base, next)]).toEqual([forWg, forNarrow, forAll]);
  });

  it('definePlugin checks reads', () => {
    const plugin = (reads: unknown) => () => definePlugin({ name: 'p', apiVersion: '2', description: 'd', config: z.strictObject({}), reads: reads as never, setup: () => ({ reconcile: async () => undefined }) });
    expect(plugin({ annotations: ['a/*'], fields: ['podCIDRs'] })).not.toThrow();
    expect(plugin({ annotations: ['a*b'] })).toThrow(/reads\.annotations must be a list of keys/);
    expect(plugin({ fields: ['podCIDRs', 'colour'] })).toThrow(/reads\.fields: unknown colour/);
  });
});

describe('what a source keeps of a node', () => {
  it('unionReads: every plugin\'s keys, and everything once one plugin did not narrow a part', () => {
    expect(unionReads([{ annotations: ['weft.io/b-*', 'x.io/a'], labels: [] }, { annotations: ['weft.io/b-*'], labels: ['l'], fields: ['podCIDRs'] }])).toEqual({ annotations: ['weft.io/b-*', 'x.io/a'], labels: ['l'] });
    expect(unionReads([{ annotations: ['x.io/a'] }, { labels: [] }])).toEqual({});
    expect(unionReads([{ annotations: ['x.io/a'], labels: [] }, undefined])).toEqual({});
    expect(unionReads([])).toEqual({ annotations: [], labels: [] });
  });

  it('nodeNarrower: the other nodes keep the keys read; the own node, and a node with nothing to drop, stay the same object', () => {
    const keep = nodeNarrower({ annotations: ['weft.io/wireguard-*'], labels: ['kubernetes.io/hostname'] }, 'a');
    const a = node('a');
    expect(keep(a)).toBe(a);
    const b = node('b');
    const narrowed = keep(b);
    expect(narrowed).toEqual({ ...b, annotations: { 'weft.io/wireguard-public-key': 'k' } });
    expect(b.annotations).toHaveProperty('other.io/x');
    const bare = node('c', { annotations: { 'weft.io/wireguard-public-key': 'k' } });
    expect(keep(bare)).toBe(bare);
    const all = nodeNarrower(undefined, 'a');
    expect(all(b)).toBe(b);
    expect(nodeNarrower({ annotations: [], labels: [] }, 'a')(b)).toEqual({ ...b, annotations: {}, labels: {} });
  });

  it('sameData: deep equality of plain data', () => {
    expect(sameData(node('b'), node('b'))).toBe(true);
    expect(sameData(node('b'), node('b', { annotations: { 'weft.io/wireguard-public-key': 'k' } }))).toBe(false);
    expect(sameData(node('b'), node('b', { podCIDRs: ['198.19.1.0/24', '198.19.2.0/24'] }))).toBe(false);
    expect(sameData({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBe(true);
    expect(sameData({ a: [1, { b: 2 }] }, { a: [1, { b: 3 }] })).toBe(false);
    expect(sameData({ a: 1 }, { a: 1, b: 1 })).toBe(false);
    expect(sameData({ a: 1, b: 1 }, { a: 1 })).toBe(false);
    expect(sameData([], {})).toBe(false);
    expect(sameData({}, [])).toBe(false);
    expect(sameData(null, {})).toBe(false);
    expect(sameData({ a: undefined }, { a: undefined })).toBe(true);
  });
});
