import type { NodeInfo, OverlayAddresses, OverlayService } from '@weft/core';
import { vettedView } from '@weft/core/testing';
import { describe, expect, it } from 'vitest';
import { addressOn, clusterAddresses, NO_OVERLAY, probeTargets } from './targets.js';

/** An overlay as its provider would offer it: addresses per node, from its own (checked) plan. */
const overlayOf = (nodes: Record<string, OverlayAddresses>): OverlayService => ({
  interface: 'weft-wg0',
  self: () => nodes['n1'],
  node: (name) => nodes[name],
  onChange: () => () => undefined,
});
const overlay = overlayOf({ n2: { ip4: '100.64.0.2', ip6: 'fd77::2' }, n3: { ip4: '100.64.0.3' } });

const node = (name: string, i: number, extra: Partial<NodeInfo> = {}): NodeInfo => ({
  name,
  internalAddresses: [`198.18.0.${String(i)}`],
  externalAddresses: [],
  podCIDRs: [`198.19.${String(i)}.0/24`],
  labels: {},
  // What a node may publish about its overlay address is the overlay provider's to check; keepalive reads none of it.
  annotations: { 'weft.io/wireguard-ip': `100.64.0.${String(i)},fd77::${String(i)}` },
  ready: true,
  location: undefined,
  createdAt: i * 1000,
  ...extra,
});
const honest = [node('n1', 1), node('n2', 2), node('n3', 3)];
const config = { planes: ['underlay', 'overlay', 'pod'] as ('underlay' | 'overlay' | 'pod')[], underlayAcrossLocations: false };
const plan = (hostile: NodeInfo) => {
  const view = vettedView({ self: 'n1', nodes: [...honest, hostile], cluster: { podNetworks: ['198.19.0.0/16'] } });
  return { targets: Object.fromEntries(probeTargets(view, ['n2', 'n3', hostile.name], config, overlay).map((t) => [t.name, t.addresses])), known: clusterAddresses(view.nodes, overlay) };
};

// One hostile node publishes what it likes about itself. The honest peers' targets never change, nothing is probed
// where the core refused a claim, and the UDP echo does not start answering addresses the hostile node claimed.
describe('keepalive targets: a hostile node', () => {
  const honestTargets = plan(node('a-evil', 66, { createdAt: 99_000 })).targets;
  it.each<[string, Partial<NodeInfo>, Record<string, unknown>, string[]]>([
    ["claims n2's pod CIDR (with a name that sorts first)", { podCIDRs: ['198.19.2.0/24'] }, { pod: { missing: 'no pod CIDR' } }, []],
    ['claims half the IPv4 space and an IPv6 default route', { podCIDRs: ['0.0.0.0/1', '::/0'] }, { pod: { missing: 'no pod CIDR' } }, ['8.8.8.8', '2001:db8::1']],
    ['publishes an overlay address the overlay does not hold for it', { annotations: { 'weft.io/wireguard-ip': '100.64.0.2' } }, { overlay: { missing: 'not on the overlay (weft-wg0) yet' } }, []],
    ["claims n2's internal address: probes there meet n2's probe server, which answers as n2 (wrong-node)", { internalAddresses: ['198.18.0.2'] }, { underlay: { address: '198.18.0.2' } }, []],
  ])('%s', (_what, claims, expected, notKnown) => {
    const { targets, known } = plan(node('a-evil', 66, { createdAt: 99_000, ...claims }));
    for (const n of ['n2', 'n3']) expect(targets[n], n).toEqual(honestTargets[n]);
    expect(targets['a-evil']).toMatchObject(expected);
    for (const a of notKnown) expect(known(a), a).toBe(false);
  });
});

describe('keepalive targets on the overlay plane', () => {
  it("come from the overlay's provider: IPv4 first, else IPv6; none without a provider, with the reason", () => {
    expect(addressOn(node('n2', 2), 'overlay', overlay)).toEqual({ address: '100.64.0.2' });
    expect(addressOn(node('n4', 4), 'overlay', overlayOf({ n4: { ip6: 'fd77::4' } }))).toEqual({ address: 'fd77::4' });
    expect(addressOn(node('n2', 2), 'overlay')).toEqual({ missing: NO_OVERLAY });
    // The UDP echo answers the overlay addresses the provider holds, not what a node published.
    const known = clusterAddresses(honest, overlay);
    expect(known('fd77::2')).toBe(true);
    expect(known('fd77::3')).toBe(false);
  });
});
