import type { NodeInfo } from '@weft/core';
import type { TunnelService } from '@weft/service-tunnels';
import { describe, expect, it } from 'vitest';
import { endpointPaths, nodeState, podState } from './planner.js';

const node = (name: string, address: string, location?: string): NodeInfo => ({
  name,
  internalAddresses: [address],
  externalAddresses: [],
  podCIDRs: [],
  labels: {},
  annotations: {},
  ready: true,
  location,
  createdAt: 0,
});
const service = (endpoints: [string, string][]): TunnelService => ({
  namespace: 'web',
  name: 'front',
  uid: 'u1',
  vips: ['203.0.113.90'],
  affinity: 'flow',
  endpoints: endpoints.map(([address, nodeName]) => ({ address, family: 4, nodeName, state: 'active' })),
  ignored: [],
});

describe('which endpoints an ingress node reaches', () => {
  const self = { name: 'n1', location: 'dc1', interfaces: [{ name: 'eth0', addresses: ['198.18.1.11/24'] }, { name: 'eth1', addresses: ['198.18.9.11/24'] }] };
  const nodes = [node('n1', '198.18.1.11', 'dc1'), node('n2', '198.18.1.12', 'dc1'), node('n3', '198.18.9.13'), node('n4', '198.18.2.14', 'dc1'), node('n5', '198.18.1.15', 'dc2'), node('n7', '198.18.1.11', 'dc1')];
  const labels = new Map([['198.19.1.10', 1000], ['198.19.2.10', 1001], ['198.19.3.10', 1002], ['198.19.4.10', 1003], ['198.19.5.10', 1004], ['198.19.6.10', 1005], ['198.19.7.10', 1006]]);
  it.each([
    { what: 'same location, a connected subnet: the label toward the node, on that link', endpoint: ['198.19.2.10', 'n2'], path: { node: 'n2', label: 1001, via: '198.18.1.12', dev: 'eth0' } },
    { what: 'no location on the other side counts as the same; the second link', endpoint: ['198.19.3.10', 'n3'], path: { node: 'n3', label: 1002, via: '198.18.9.13', dev: 'eth1' } },
    { what: 'behind a router (no connected subnet holds it)', endpoint: ['198.19.4.10', 'n4'], reason: /^not on-link: no address of n4 \(198\.18\.2\.14\) is on a network/ },
    { what: 'another location, though on-link', endpoint: ['198.19.5.10', 'n5'], reason: /^not on-link: n5 is in location dc2, this ingress node in dc1/ },
    { what: "a node claiming this node's address", endpoint: ['198.19.7.10', 'n7'], reason: /^not on-link/ },
    { what: 'on the ingress node itself', endpoint: ['198.19.1.10', 'n1'], reason: /^on this ingress node itself/ },
    { what: 'no label published', endpoint: ['198.19.2.99', 'n2'], reason: /n2 has published no label/ },
  ])('$what', ({ endpoint, path, reason }) => {
    const r = endpointPaths([service([endpoint as [string, string]])], nodes, self, () => labels);
    if (path) expect(r.paths.get(endpoint[0] as string)).toEqual(path);
    else expect(r.unused.map((u) => u.reason)).toEqual([expect.stringMatching(reason)]);
  });
});

describe('what an endpoint node and its pods get', () => {
  it('the node: label space to the range end, MPLS input on its underlay links, a swap to 100 per pod; nothing without pods', () => {
    expect(nodeState(new Map([['198.19.3.11', 2001], ['198.19.3.10', 2000]]), ['eth0'], 2099)).toEqual({
      sysctls: [{ key: 'net.mpls.platform_labels', value: '2100' }, { key: 'net.mpls.conf.eth0.input', value: '1' }],
      mplsRoutes: [{ label: 2000, as: [100], via: '198.19.3.10' }, { label: 2001, as: [100], via: '198.19.3.11' }],
    });
    expect(nodeState(new Map(), ['eth0'], 2099)).toEqual({});
  });
  it('the pod: its VIPs on the dummy, pop 100 to the loopback, input on its interface; only VIP traffic out of a label; the MSS on the VIPs leaves room for the label', () => {
    const s = podState(['203.0.113.90', '2001:db8::90'], 'eth0', 1450);
    expect(s.links).toEqual([{ kind: 'dummy', name: 'weft-mp0' }]);
    expect(s.addresses).toEqual([{ dev: 'weft-mp0', address: '203.0.113.90/32' }, { dev: 'weft-mp0', address: '2001:db8::90/128' }]);
    expect(s.mplsRoutes).toEqual([{ label: 100, dev: 'lo' }]);
    expect(s.sysctls?.map((x) => `${x.key}=${x.value}`)).toEqual(['net.mpls.platform_labels=101', 'net.mpls.conf.eth0.input=1', 'net.ipv4.conf.all.rp_filter=2', 'net.ipv4.conf.lo.rp_filter=2']);
    expect(s.nftables?.[0]?.body).toContain('iifname "lo" ip daddr { 203.0.113.90 } accept');
    expect(s.nftables?.[0]?.body).toContain('iifname "lo" ip6 daddr { 2001:db8::90 } accept');
    expect(s.nftables?.[0]?.body).toMatch(/iifname "lo" fib saddr type local accept[\s\S]*iifname "lo" drop/);
    // The MSS offered on the VIPs: the pod's MTU less the headers and the label (1450 - 40 - 4; IPv6 1450 - 60 - 4).
    expect(s.nftables?.[0]?.body).toContain('ip saddr { 203.0.113.90 } tcp flags & (syn | rst) == syn tcp option maxseg size > 1406 tcp option maxseg size set 1406');
    expect(s.nftables?.[0]?.body).toContain('ip6 saddr { 2001:db8::90 } tcp flags & (syn | rst) == syn tcp option maxseg size > 1386 tcp option maxseg size set 1386');
  });
});
