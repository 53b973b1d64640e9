import type { ClusterView, EndpointSliceInfo, NodeInfo, ServiceInfo } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { AFFINITY_ANNOTATION, DRAIN_ANNOTATION, ENCAP_ANNOTATION, TUNNEL_ANNOTATION, tunnelServices } from './services.js';

const node = (i: number): NodeInfo => ({
  name: `n${String(i)}`,
  internalAddresses: [`198.18.1.${String(10 + i)}`],
  externalAddresses: [],
  podCIDRs: [`198.19.${String(i)}.0/24`],
  labels: {},
  annotations: {},
  ready: true,
  location: undefined,
  createdAt: i,
});
const service = (name: string, annotations: Record<string, string>, extra: Partial<ServiceInfo> = {}): ServiceInfo => ({
  namespace: 'web',
  name,
  annotations,
  clusterIPs: [],
  externalIPs: [],
  loadBalancerIPs: [],
  ports: [],
  ...extra,
});
const slice = (name: string, serviceName: string, endpoints: EndpointSliceInfo['endpoints']): EndpointSliceInfo => ({ namespace: 'web', name, serviceName, addressType: 'IPv4', endpoints });
const view = (services: ServiceInfo[], slices: EndpointSliceInfo[] = []): Pick<ClusterView, 'nodes' | 'services' | 'endpointSlices' | 'addressPlan'> => ({
  nodes: [node(1), node(2)],
  services,
  endpointSlices: slices,
  addressPlan: { podNetworks: ['198.19.0.0/16'], serviceNetworks: ['10.96.0.0/12'], underlayNetworks: [] },
});

describe('tunnelled Services', () => {
  it('takes the VIPs (both families, deduplicated) and the serving endpoints: ready ones active, terminating and drained ones draining', () => {
    const r = tunnelServices(
      view(
        [service('front', { [TUNNEL_ANNOTATION]: '203.0.113.80, 2001:db8:80::1,203.0.113.80', [DRAIN_ANNOTATION]: '198.19.2.11', [AFFINITY_ANNOTATION]: 'client' }, { uid: 'u1' })],
        [
          slice('front-a', 'front', [
            { addresses: ['198.19.1.10'], ready: true, nodeName: 'n1' },
            { addresses: ['198.19.2.10'], ready: false, serving: true, terminating: true, nodeName: 'n2' },
            { addresses: ['198.19.2.12'], ready: false, serving: false, terminating: true, nodeName: 'n2' },
          ]),
          slice('front-b', 'front', [
            { addresses: ['198.19.2.11'], ready: true, nodeName: 'n2' },
            // Hostile or broken: outside every pod CIDR (a node's address), in n1's CIDR but said to be on n2.
            { addresses: ['198.18.1.11'], ready: true, nodeName: 'n1' },
            { addresses: ['198.19.1.77'], ready: true, nodeName: 'n2' },
            // No node named: its pod CIDR says which.
            { addresses: ['198.19.1.12'], ready: true },
          ]),
          slice('other', 'back', [{ addresses: ['198.19.1.99'], ready: true }]),
        ],
      ),
    );
    expect(r.refused).toEqual([]);
    expect(r.services).toEqual([
      {
        namespace: 'web',
        name: 'front',
        uid: 'u1',
        vips: ['203.0.113.80', '2001:db8:80::1'],
        affinity: 'client',
        endpoints: [
          { address: '198.19.1.10', family: 4, nodeName: 'n1', state: 'active' },
          { address: '198.19.1.12', family: 4, nodeName: 'n1', state: 'active' },
          { address: '198.19.2.10', family: 4, nodeName: 'n2', state: 'draining' },
          { address: '198.19.2.11', family: 4, nodeName: 'n2', state: 'draining' },
        ],
        ignored: ["198.18.1.11: in no node's pod CIDR", "198.19.1.77: in n1's pod CIDR, not in that of n2, the node it names"],
      },
    ]);
  });

  describe('hostile or broken annotations: that Service is refused and said why, the others unharmed', () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      ["a node's address", { [TUNNEL_ANNOTATION]: '198.18.1.11' }, /198\.18\.1\.11 is node n1's address/],
      ["a pod's address", { [TUNNEL_ANNOTATION]: '198.19.1.10' }, /is a pod's address/],
      ['inside the pod network', { [TUNNEL_ANNOTATION]: '198.19.200.1' }, /lies in the pod network 198\.19\.0\.0\/16/],
      ['inside the service network', { [TUNNEL_ANNOTATION]: '10.96.0.10' }, /lies in the service network/],
      ['not an address', { [TUNNEL_ANNOTATION]: 'example.com' }, /"example\.com" is not an IP address/],
      ['a CIDR', { [TUNNEL_ANNOTATION]: '203.0.113.0/24' }, /is not an IP address/],
      ['empty', { [TUNNEL_ANNOTATION]: ' , ' }, /no VIP/],
      ['too many', { [TUNNEL_ANNOTATION]: Array.from({ length: 17 }, (_, i) => `203.0.113.${String(i + 1)}`).join(',') }, /17 VIPs, more than 16/],
      ['oversized', { [TUNNEL_ANNOTATION]: `203.0.113.1${' '.repeat(2000)}` }, /more than 1024/],
      ['a bad affinity', { [TUNNEL_ANNOTATION]: '203.0.113.9', [AFFINITY_ANNOTATION]: 'sticky' }, /expected flow or client/],
      ['a bad drain list', { [TUNNEL_ANNOTATION]: '203.0.113.9', [DRAIN_ANNOTATION]: 'pod-1' }, /expected pod addresses/],
    ];
    it.each(cases)('%s', (_what, annotations, reason) => {
      const r = tunnelServices(view([service('bad', annotations), service('good', { [TUNNEL_ANNOTATION]: '203.0.113.200' })], [slice('good-a', 'good', [{ addresses: ['198.19.1.10'], ready: true }])]));
      expect(r.refused).toEqual([{ namespace: 'web', name: 'bad', reason: expect.stringMatching(reason) as string }]);
      expect(r.services.map((s) => s.name)).toEqual(['good']);
    });
  });

  it('a VIP two Services ask for: the older keeps it; unknown or equal ages, neither — never the name that sorts first', () => {
    const vip = { [TUNNEL_ANNOTATION]: '203.0.113.80' };
    const older = tunnelServices(view([service('a', vip, { createdAt: 2000 }), service('b', vip, { createdAt: 1000 })]));
    expect(older.services.map((s) => s.name)).toEqual(['b']);
    expect(older.refused).toEqual([{ namespace: 'web', name: 'a', reason: expect.stringMatching(/also asked for by web\/b, which is older/) as string }]);
    const unknown = tunnelServices(view([service('a', vip), service('b', vip, { createdAt: 1000 })]));
    expect(unknown.services).toEqual([]);
    expect(unknown.refused.map((x) => x.name)).toEqual(['a', 'b']);
    const tie = tunnelServices(view([service('a', vip, { createdAt: 5 }), service('b', vip, { createdAt: 5 })]));
    expect(tie.services).toEqual([]);
  });

  it('weft.io/tunnel-encap picks the plugin: each serves its own and, when told, the unmarked; a VIP conflict counts across both; a bad value is refused', () => {
    const services = [
      service('plain', { [TUNNEL_ANNOTATION]: '203.0.113.80' }),
      service('gre', { [TUNNEL_ANNOTATION]: '203.0.113.81', [ENCAP_ANNOTATION]: 'gre' }),
      service('mpls', { [TUNNEL_ANNOTATION]: '203.0.113.82', [ENCAP_ANNOTATION]: 'mpls' }),
      service('odd', { [TUNNEL_ANNOTATION]: '203.0.113.83', [ENCAP_ANNOTATION]: 'vxlan' }),
      // Older, MPLS: keeps .84 against a younger unmarked Service that the GRE plugin would serve.
      service('mpls-old', { [TUNNEL_ANNOTATION]: '203.0.113.84', [ENCAP_ANNOTATION]: 'mpls' }, { createdAt: 1 }),
      service('gre-young', { [TUNNEL_ANNOTATION]: '203.0.113.84' }, { createdAt: 2 }),
    ];
    const gre = tunnelServices(view(services), { encap: 'gre', unmarked: true });
    expect(gre.services.map((s) => s.name)).toEqual(['gre', 'plain']);
    expect(gre.refused.map((r) => r.name)).toEqual(['gre-young', 'odd']);
    expect(gre.refused.find((r) => r.name === 'odd')?.reason).toMatch(/weft.io\/tunnel-encap: expected gre or mpls, got "vxlan"/);
    const mpls = tunnelServices(view(services), { encap: 'mpls', unmarked: false });
    expect(mpls.services.map((s) => [s.name, s.encap])).toEqual([['mpls', 'mpls'], ['mpls-old', 'mpls']]);
    expect(tunnelServices(view(services), { encap: 'mpls', unmarked: true }).services.map((s) => s.name)).toEqual(['mpls', 'mpls-old', 'plain']);
    expect(tunnelServices(view(services)).services).toHaveLength(4);
  });
});
