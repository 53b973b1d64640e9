import { describe, expect, it } from 'vitest';
import type { NodeInfo } from '../api/cluster.js';
import { definePlugin } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { compileReads, viewChangedFor } from './reads.js';
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
    const plugin = (reads: unknown) => () => definePlugin({ name: 'p', apiVersion: '1', description: 'd', config: z.strictObject({}), reads: reads as never, setup: () => ({ reconcile: async () => undefined }) });
    expect(plugin({ annotations: ['a/*'], fields: ['podCIDRs'] })).not.toThrow();
    expect(plugin({ annotations: ['a*b'] })).toThrow(/reads\.annotations must be a list of keys/);
    expect(plugin({ fields: ['podCIDRs', 'colour'] })).toThrow(/reads\.fields: unknown colour/);
  });
});
