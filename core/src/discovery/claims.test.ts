import { describe, expect, it } from 'vitest';
import type { ClusterView, NodeInfo } from '../api/cluster.js';
import { CoreConfigSchema, type ClusterSettings } from '../config/schema.js';
import { makeNode } from '../testing/fake-cluster.js';
import { claimRules, vetClaims } from './claims.js';
import { makeView } from './view.js';

/** Node i: underlay 192.0.2.i, pods 198.19.i.0/24, created at i seconds (n1 is the oldest). */
function node(name: string, over: Partial<NodeInfo> = {}): NodeInfo {
  const i = Number(name.replace(/\D/g, '') || '99');
  return makeNode({ name, internalAddresses: [`192.0.2.${String(i)}`], podCIDRs: [`198.19.${String(i)}.0/24`], createdAt: i * 1000, ...over });
}

function vet(nodes: NodeInfo[], cluster: Partial<ClusterSettings> = {}, self = 'n1'): ClusterView {
  return vetClaims(makeView({ selfName: self, nodes, revision: 1 }), claimRules(CoreConfigSchema.shape.cluster.parse(cluster)));
}

const pods = (v: ClusterView) => Object.fromEntries(v.nodes.map((n) => [n.name, n.podCIDRs.join(' ')]));
const refused = (v: ClusterView) => v.claimProblems.filter((p) => p.outcome === 'refused').map((p) => `${p.node} ${p.value}: ${p.reason}`);

describe('claims: what one node may claim for itself', () => {
  it('a cluster of honest nodes comes through as it is, the same node objects, nothing said', () => {
    const nodes = [node('n1'), node('n2'), node('n3')];
    const v = vet(nodes, { podNetworks: ['198.19.0.0/16'] });
    expect(v.claimProblems).toEqual([]);
    expect(v.nodes.map((n, i) => n === nodes[i])).toEqual([true, true, true]);
    expect(v.addressPlan).toEqual({ podNetworks: ['198.19.0.0/16'], serviceNetworks: [], underlayNetworks: [] });
  });

  it.each<[string, string[], Partial<ClusterSettings>, string]>([
    ['not a CIDR', ['198.19.2.0/33'], {}, 'not a CIDR'],
    ['an IPv6 default route', ['::/0'], {}, 'bigger than a node may claim (cluster.largestPodCIDR: /48)'],
    ['half the IPv4 space', ['0.0.0.0/1'], {}, 'bigger than a node may claim (cluster.largestPodCIDR: /16)'],
    ['bigger than the configured largest', ['198.19.0.0/20'], { largestPodCIDR: { ipv4: 22, ipv6: 64 } }, 'bigger than a node may claim (cluster.largestPodCIDR: /22)'],
    ['outside the pod networks', ['10.9.0.0/24'], { podNetworks: ['198.19.0.0/16', 'fd00:19::/48'] }, "outside the cluster's pod networks (198.19.0.0/16, fd00:19::/48)"],
    ['an IPv6 one outside the IPv6 pod network', ['fd00:20::/64'], { podNetworks: ['198.19.0.0/16', 'fd00:19::/48'] }, "outside the cluster's pod networks (198.19.0.0/16, fd00:19::/48)"],
    ['a pod network itself, bigger than a node gets', ['198.19.0.0/16'], { podNetworks: ['198.19.0.0/16'], largestPodCIDR: { ipv4: 20, ipv6: 64 } }, 'bigger than a node may claim (cluster.largestPodCIDR: /20)'],
    ['overlapping a service network', ['10.96.0.0/24'], { serviceNetworks: ['10.96.0.0/12'] }, 'overlaps the service network 10.96.0.0/12'],
    ['overlapping a declared underlay', ['198.18.0.0/24'], { underlayNetworks: ['198.18.0.0/16'] }, 'overlaps the underlay network 198.18.0.0/16'],
    ["holding another node's address (no underlay declared)", ['192.0.2.0/25'], {}, "holds a node's own address"],
    ['holding its own address', ['192.0.2.2/32'], {}, "holds a node's own address"],
  ])('refused: %s', (_what, claim, cluster, reason) => {
    const v = vet([node('n1'), node('n2', { podCIDRs: [...claim, '198.19.2.0/24'] }), node('n3')], cluster);
    expect(refused(v)).toEqual([`n2 ${claim[0] ?? ''}: ${reason}`]);
    // Only that claim: the node keeps its others, and the other nodes keep theirs.
    expect(pods(v)).toEqual({ n1: '198.19.1.0/24', n2: '198.19.2.0/24', n3: '198.19.3.0/24' });
    expect(v.self).toBe(v.nodes[0]);
  });

  it('more pod CIDRs than cluster.maxPodCIDRsPerNode: none of them is accepted', () => {
    const many = Array.from({ length: 9 }, (_, i) => `198.19.${String(100 + i)}.0/24`);
    const v = vet([node('n1'), node('n2', { podCIDRs: many })]);
    expect(refused(v)).toEqual([`n2 ${many.join(',').slice(0, 97)}...: 9 pod CIDRs, more than cluster.maxPodCIDRsPerNode (8): none accepted`]);
    expect(pods(v).n2).toBe('');
  });
});

describe('claims: two nodes, one network — the older keeps it, never the name', () => {
  it('a newer node claiming an older one\'s pod CIDR is refused, whatever its name; the keeper hears of it', () => {
    const v = vet([node('n1'), node('n2'), node('a-evil', { podCIDRs: ['198.19.2.0/24'], createdAt: 60_000 })]);
    expect(refused(v)).toEqual(["a-evil 198.19.2.0/24: overlaps n2's 198.19.2.0/24, which the cluster knew first"]);
    expect(v.claimProblems.filter((p) => p.outcome === 'contested')).toEqual([
      { node: 'n2', field: 'podCIDR', value: '198.19.2.0/24', outcome: 'contested', reason: 'also claimed by a-evil (refused there: the cluster knew n2 first)' },
    ]);
    expect(pods(v)).toEqual({ 'a-evil': '', n1: '198.19.1.0/24', n2: '198.19.2.0/24' });
  });

  it('the older node keeps it even when it is the one that sorts last', () => {
    const v = vet([node('n1'), node('z-old', { podCIDRs: ['198.19.7.0/24'], createdAt: 10 }), node('a-new', { podCIDRs: ['198.19.7.128/25'], createdAt: 20 })]);
    expect(pods(v)).toEqual({ 'a-new': '', n1: '198.19.1.0/24', 'z-old': '198.19.7.0/24' });
  });

  it('equally old: neither keeps it', () => {
    const v = vet([node('n1'), node('n2', { createdAt: 5 }), node('n3', { podCIDRs: ['198.19.2.0/25'], createdAt: 5 })]);
    expect(refused(v)).toEqual([
      "n2 198.19.2.0/24: overlaps n3's 198.19.2.0/25, and the cluster knew both nodes at the same time: neither keeps it",
      "n3 198.19.2.0/25: overlaps n2's 198.19.2.0/24, and the cluster knew both nodes at the same time: neither keeps it",
    ]);
  });

  it('a claim that only overlapped a refused one stands', () => {
    // n2 (older) holds .0/25; n3's /24 overlaps it and falls; n4's .128/25 overlapped only n3's /24.
    const v = vet([node('n1'), node('n2', { podCIDRs: ['198.19.50.0/25'] }), node('n3', { podCIDRs: ['198.19.50.0/24'] }), node('n4', { podCIDRs: ['198.19.50.128/25'] })]);
    expect(pods(v)).toEqual({ n1: '198.19.1.0/24', n2: '198.19.50.0/25', n3: '', n4: '198.19.50.128/25' });
  });

  it('random clusters: the same as a plain oldest-first check of every pair', () => {
    let seed = 11;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 40; round++) {
      const nodes = [node('n1', { podCIDRs: ['198.19.200.0/24'] })];
      for (let i = 2; i <= 14; i++) {
        const prefix = [22, 23, 24, 25, 26][rand(5)] as number;
        const fourth = prefix >= 25 ? rand(4) * 64 : 0;
        nodes.push(node(`n${String(i)}`, { podCIDRs: [`198.19.${String(rand(16))}.${String(fourth)}/${String(prefix)}`], createdAt: rand(6) }));
      }
      const v = vet(nodes);
      // The reference: oldest first; a claim falls when it overlaps a standing older claim or an equally old one.
      const range = (c: string) => {
        const [ip, len] = c.split('/') as [string, string];
        const value = ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
        const size = 2 ** (32 - Number(len));
        return [Math.floor(value / size) * size, Math.floor(value / size) * size + size] as const;
      };
      const overlap = (a: string, b: string) => range(a)[0] < range(b)[1] && range(b)[0] < range(a)[1];
      const byAge = [...nodes].sort((a, b) => a.createdAt - b.createdAt);
      const standing: NodeInfo[] = [];
      const expected: Record<string, string> = {};
      for (const n of byAge) {
        const c = n.podCIDRs[0] as string;
        const older = standing.some((s) => overlap(s.podCIDRs[0] as string, c));
        const twin = byAge.some((o) => o !== n && o.createdAt === n.createdAt && overlap(o.podCIDRs[0] as string, c));
        expected[n.name] = older || twin ? '' : canonical(c);
        if (!older && !twin) standing.push(n);
      }
      expect(pods(v), `round ${String(round)}`).toEqual(expected);
    }
  });
});

describe('claims: addresses and the size of the view', () => {
  it('an address two nodes claim is said on both and kept on both; one that is not an address is refused', () => {
    const v = vet([node('n1'), node('n2'), node('n3', { internalAddresses: ['192.0.2.2', 'not-an-ip'] })]);
    expect(v.claimProblems.map((p) => `${p.node} ${p.field} ${p.value} ${p.outcome}: ${p.reason}`)).toEqual([
      'n2 address 192.0.2.2 contested: also claimed by n3',
      'n3 address 192.0.2.2 contested: also claimed by n2',
      'n3 address not-an-ip refused: not an IP address',
    ]);
    expect(v.nodes.map((n) => n.internalAddresses.join(' '))).toEqual(['192.0.2.1', '192.0.2.2', '192.0.2.2']);
  });

  it('more addresses than cluster.maxAddressesPerNode: none of them is accepted', () => {
    const many = Array.from({ length: 17 }, (_, i) => `192.0.2.${String(100 + i)}`);
    const v = vet([node('n1'), node('n2', { externalAddresses: many })]);
    expect(refused(v)).toEqual([`n2 ${['192.0.2.2', ...many].join(',').slice(0, 97)}...: 18 addresses, more than cluster.maxAddressesPerNode (16): none accepted`]);
    expect(v.nodes.find((n) => n.name === 'n2')).toMatchObject({ internalAddresses: [], externalAddresses: [], podCIDRs: ['198.19.2.0/24'] });
  });

  it('over cluster.maxNodes the newest are left out, never this node; nodes tied at the edge all go', () => {
    const nodes = [node('n1', { createdAt: 99_000 }), node('n2'), node('n3'), node('n4', { createdAt: 3000 }), node('n5')];
    const v = vet(nodes, { maxNodes: 3 });
    expect(v.nodes.map((n) => n.name)).toEqual(['n1', 'n2']);
    expect(refused(v)).toEqual([
      'n3 n3: the view holds at most 3 nodes (cluster.maxNodes); the newest are left out',
      'n4 n4: the view holds at most 3 nodes (cluster.maxNodes); the newest are left out',
      'n5 n5: the view holds at most 3 nodes (cluster.maxNodes); the newest are left out',
    ]);
    expect(vet(nodes, { maxNodes: 4 }).nodes.map((n) => n.name)).toEqual(['n1', 'n2', 'n3', 'n4']);
  });
});

function canonical(cidr: string): string {
  const [ip, len] = cidr.split('/') as [string, string];
  const value = ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(len));
  const start = Math.floor(value / size) * size;
  return `${[24, 16, 8, 0].map((s) => Math.floor(start / 2 ** s) % 256).join('.')}/${len}`;
}

describe('claims: a view change that claims nothing new', () => {
  it('carries the last outcome over to the new nodes (their annotations, readiness), and checks again when a claim changes', () => {
    const rules = claimRules(CoreConfigSchema.shape.cluster.parse({}));
    const first = makeView({ selfName: 'n1', nodes: [node('n1'), node('n2'), node('a-evil', { podCIDRs: ['198.19.2.0/24', '198.19.77.0/24'], createdAt: 60_000 })], revision: 1 });
    const v1 = vetClaims(first, rules);
    // Only annotations and readiness changed: the same refusals, on the new node objects.
    const second = makeView({ selfName: 'n1', nodes: first.nodes.map((n) => ({ ...n, ready: n.name !== 'n2', annotations: { 'weft.io/x': n.name } })), revision: 2 });
    const v2 = vetClaims(second, rules, { source: first, vetted: v1 });
    expect(v2).toEqual(vetClaims(second, rules));
    expect(v2.claimProblems).toBe(v1.claimProblems);
    expect(v2.nodes.find((n) => n.name === 'n2')).toBe(second.nodes.find((n) => n.name === 'n2'));
    expect(v2.nodes.find((n) => n.name === 'a-evil')).toMatchObject({ podCIDRs: ['198.19.77.0/24'], annotations: { 'weft.io/x': 'a-evil' } });
    expect(v2.nodes.find((n) => n.name === 'n2')?.ready).toBe(false);
    // A claim changed (n2 gives its CIDR up): checked again, a-evil now keeps it.
    const third = makeView({ selfName: 'n1', nodes: second.nodes.map((n) => (n.name === 'n2' ? { ...n, podCIDRs: ['198.19.22.0/24'] } : n)), revision: 3 });
    const v3 = vetClaims(third, rules, { source: second, vetted: v2 });
    expect(v3).toEqual(vetClaims(third, rules));
    expect(pods(v3)['a-evil']).toBe('198.19.2.0/24 198.19.77.0/24');
  });
});
