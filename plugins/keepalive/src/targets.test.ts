import type { NodeInfo } from '@weft/core';
import { vettedView } from '@weft/core/testing';
import { describe, expect, it } from 'vitest';
import { clusterAddresses, OVERLAY_ANNOTATION, probeTargets } from './targets.js';

const node = (name: string, i: number, extra: Partial<NodeInfo> = {}): NodeInfo => ({
  name,
  internalAddresses: [`198.18.0.${String(i)}`],
  externalAddresses: [],
  podCIDRs: [`198.19.${String(i)}.0/24`],
  labels: {},
  annotations: { [OVERLAY_ANNOTATION]: `100.64.0.${String(i)},fd77::${String(i)}` },
  ready: true,
  location: undefined,
  createdAt: i * 1000,
  ...extra,
});
const honest = [node('n1', 1), node('n2', 2), node('n3', 3)];
const config = { planes: ['underlay', 'overlay', 'pod'] as ('underlay' | 'overlay' | 'pod')[], underlayAcrossLocations: false };
const plan = (hostile: NodeInfo) => {
  const view = vettedView({ self: 'n1', nodes: [...honest, hostile], cluster: { podNetworks: ['198.19.0.0/16'] } });
  return { targets: Object.fromEntries(probeTargets(view, ['n2', 'n3', hostile.name], config).map((t) => [t.name, t.addresses])), known: clusterAddresses(view.nodes) };
};

// One hostile node publishes what it likes about itself. The honest peers' targets never change, nothing is probed
// where the core refused a claim, and the UDP echo does not start answering addresses the hostile node claimed.
describe('keepalive targets: a hostile node', () => {
  const honestTargets = plan(node('a-evil', 66, { createdAt: 99_000 })).targets;
  it.each<[string, Partial<NodeInfo>, Record<string, unknown>, string[]]>([
    ["claims n2's pod CIDR (with a name that sorts first)", { podCIDRs: ['198.19.2.0/24'] }, { pod: { missing: 'no pod CIDR' } }, []],
    ['claims half the IPv4 space and an IPv6 default route', { podCIDRs: ['0.0.0.0/1', '::/0'] }, { pod: { missing: 'no pod CIDR' } }, ['8.8.8.8', '2001:db8::1']],
    ['publishes garbage, then an address, as its overlay', { annotations: { [OVERLAY_ANNOTATION]: 'x; rm -rf /, 100.64.0.66' } }, { overlay: { address: '100.64.0.66' } }, []],
    ['publishes no usable overlay address', { annotations: { [OVERLAY_ANNOTATION]: '$(reboot)' } }, { overlay: { missing: `no overlay address published (${OVERLAY_ANNOTATION})` } }, []],
    ["claims n2's internal address: probes there meet n2's probe server, which answers as n2 (wrong-node)", { internalAddresses: ['198.18.0.2'] }, { underlay: { address: '198.18.0.2' } }, []],
  ])('%s', (_what, claims, expected, notKnown) => {
    const { targets, known } = plan(node('a-evil', 66, { createdAt: 99_000, ...claims }));
    for (const n of ['n2', 'n3']) expect(targets[n], n).toEqual(honestTargets[n]);
    expect(targets['a-evil']).toMatchObject(expected);
    for (const a of notKnown) expect(known(a), a).toBe(false);
  });
});
