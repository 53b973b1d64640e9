import type { TunnelEndpoint, TunnelService } from '@weft/service-tunnels';
import { describe, expect, it } from 'vitest';
import { GreTunnelConfig, RULE_PRIORITY } from './config.js';
import { allocateSlots, markText } from '@weft/service-tunnels';
import { planIngress, podState, type VipPlan } from './planner.js';

const config = GreTunnelConfig.parse({ ingress: { nodeSelector: { ingress: 'true' } }, tableSize: 251 });
const ep = (address: string, state: TunnelEndpoint['state'] = 'active'): TunnelEndpoint => ({ address, family: address.includes(':') ? 6 : 4, nodeName: 'n3', state });
const service = (endpoints: TunnelEndpoint[], extra: Partial<TunnelService> = {}): TunnelService => ({
  namespace: 'web',
  name: 'front',
  uid: 'u1',
  vips: ['203.0.113.80'],
  affinity: 'flow',
  endpoints,
  ignored: [],
  ...extra,
});
/** Bucket → endpoint address, whatever slots a node gave them. */
const byAddress = (v: VipPlan) => Array.from(v.table.table, (i) => v.table.endpoints[i]);
const THREE = [ep('198.19.3.10'), ep('198.19.3.11'), ep('198.19.4.10')];

describe('the ingress plan', () => {
  it('a Maglev table per VIP as one map element per bucket, a rule and a table per endpoint slot, routes through the GRE device in metadata mode', () => {
    const p = planIngress([service(THREE)], config, { self: 'n1', now: 0, previousSlots: new Map() });
    expect([...p.slots]).toEqual([
      ['198.19.3.10', { slot: 1 }],
      ['198.19.3.11', { slot: 2 }],
      ['198.19.4.10', { slot: 3 }],
    ]);
    expect(p.desired.links).toEqual([{ kind: 'gre', name: 'weft-gre0', external: true }]);
    expect(p.desired.rules).toEqual([1, 2, 3].map((s) => ({ priority: RULE_PRIORITY, family: 4, fwmark: s << 16, fwmask: 0x0fff0000, table: 0x5700 + s })));
    expect(p.desired.routes).toEqual(THREE.map((e, i) => ({ dst: '203.0.113.80/32', table: 0x5700 + i + 1, dev: 'weft-gre0', ipEncap: { dst: e.address } })));
    const t = p.desired.nftables?.[0];
    expect(t?.elements?.b0).toHaveLength(251);
    expect(t?.elements?.live).toEqual([markText(1 << 16), markText(2 << 16), markText(3 << 16)]);
    expect(t?.counters).toEqual(['e1', 'e2', 'e3']);
    expect(t?.body).toContain('meta mark set jhash ip saddr . ip daddr . th sport . th dport mod 251 seed 0x');
    expect(p.vips[0]?.endpoints.map((e) => e.buckets).reduce((a, b) => a + b)).toBe(251);
    expect(p.desired.sysctls).toEqual([{ key: 'net.ipv4.ip_forward', value: '1' }]);
  });

  it('two ingress nodes map every bucket to the same endpoint, whatever their slots; a per-node seed does not', () => {
    const a = planIngress([service(THREE)], config, { self: 'n1', now: 0, previousSlots: new Map() });
    // n2 met the endpoints in another order and gave them other slots.
    const b = planIngress([service(THREE)], config, { self: 'n2', now: 0, previousSlots: new Map([['198.19.4.10', { slot: 1 }], ['198.19.3.10', { slot: 7 }]]) });
    expect(b.slots.get('198.19.4.10')?.slot).toBe(1);
    expect(byAddress(b.vips[0] as VipPlan)).toEqual(byAddress(a.vips[0] as VipPlan));
    expect(b.vips[0]?.jhashSeed).toBe(a.vips[0]?.jhashSeed);
    const perNode = { ...config, seedPerNode: true };
    const c = planIngress([service(THREE)], perNode, { self: 'n1', now: 0, previousSlots: new Map() });
    const d = planIngress([service(THREE)], perNode, { self: 'n2', now: 0, previousSlots: new Map() });
    expect(c.vips[0]?.jhashSeed).not.toBe(d.vips[0]?.jhashSeed);
    expect(byAddress(c.vips[0] as VipPlan)).not.toEqual(byAddress(d.vips[0] as VipPlan));
  });

  it('keeps every slot across plans (and restarts: the slots are given back); a new endpoint takes the lowest free one', () => {
    const first = planIngress([service(THREE)], config, { self: 'n1', now: 0, previousSlots: new Map() });
    const without = planIngress([service([ep('198.19.3.10'), ep('198.19.4.10')])], config, { self: 'n1', now: 1, previousSlots: first.slots });
    expect([...without.slots].map(([a, r]) => [a, r.slot])).toEqual([['198.19.3.10', 1], ['198.19.4.10', 3]]);
    const added = planIngress([service([ep('198.19.3.10'), ep('198.19.4.10'), ep('198.19.5.10')])], config, { self: 'n1', now: 2, previousSlots: without.slots });
    expect(added.slots.get('198.19.5.10')?.slot).toBe(2);
    // The leaving endpoint's buckets all moved; of the others' very few did (Maglev's disruption is near minimal).
    const before = byAddress(first.vips[0] as VipPlan);
    const after = byAddress(without.vips[0] as VipPlan);
    const moved = before.map((x, i) => [x, after[i]] as const).filter(([x, y]) => x !== y);
    const leaving = before.filter((x) => x === '198.19.3.11').length;
    expect(moved.filter(([x]) => x === '198.19.3.11')).toHaveLength(leaving);
    expect(moved.length - leaving).toBeLessThanOrEqual(Math.ceil(251 * 0.05));
  });

  it('a draining endpoint gets no buckets but keeps its slot, route and pinned flows until the drain timeout; then it is dropped', () => {
    const first = planIngress([service(THREE)], config, { self: 'n1', now: 0, previousSlots: new Map() });
    const drainingSet = [ep('198.19.3.10'), ep('198.19.3.11', 'draining'), ep('198.19.4.10')];
    const draining = planIngress([service(drainingSet)], config, { self: 'n1', now: 1000, previousSlots: first.slots });
    const v = draining.vips[0] as VipPlan;
    expect(v.endpoints.find((e) => e.address === '198.19.3.11')).toEqual({ address: '198.19.3.11', state: 'draining', slot: 2, buckets: 0 });
    expect(draining.desired.nftables?.[0]?.elements?.live).toContain(markText(2 << 16));
    expect(draining.desired.routes?.map((r) => r.ipEncap?.dst)).toContain('198.19.3.11');
    expect(draining.slots.get('198.19.3.11')).toEqual({ slot: 2, drainingSince: 1000 });
    const later = planIngress([service(drainingSet)], config, { self: 'n1', now: 1000 + config.drainTimeout, previousSlots: draining.slots });
    expect(later.vips[0]?.endpoints.find((e) => e.address === '198.19.3.11')?.state).toBe('drained');
    expect(later.desired.nftables?.[0]?.elements?.live).not.toContain(markText(2 << 16));
    expect(later.desired.routes?.map((r) => r.ipEncap?.dst)).not.toContain('198.19.3.11');
    expect(later.desired.rules?.map((r) => r.table)).not.toContain(0x5700 + 2);
  });

  it('client affinity hashes the source address alone; an IPv6 VIP goes to IPv6 endpoints through ip6gre; a VIP without endpoints drops', () => {
    const s = service([ep('198.19.3.10'), ep('2001:db8:19::10')], { vips: ['203.0.113.80', '2001:db8:80::1'], affinity: 'client' });
    const p = planIngress([s, service([], { name: 'empty', vips: ['203.0.113.81'] })], config, { self: 'n1', now: 0, previousSlots: new Map() });
    const body = p.desired.nftables?.[0]?.body ?? '';
    expect(body).toContain('meta mark set jhash ip saddr mod 251');
    expect(body).toContain('meta mark set jhash ip6 saddr mod 251');
    expect(p.desired.links?.map((l) => l.name)).toEqual(['weft-gre0', 'weft-gre6']);
    expect(p.desired.routes).toContainEqual({ dst: '2001:db8:80::1/128', table: 0x5700 + 2, dev: 'weft-gre6', ipEncap: { dst: '2001:db8:19::10' } });
    // The VIP without endpoints: a pinned flow may still finish (its endpoint draining); nothing new gets in.
    expect(body).toMatch(/chain vip2 \{\n {2}meta mark set ip saddr \. ip daddr \. th sport \. th dport map @flows4 meta mark & 0x0fff0000 @live update @flows4 \{ ip saddr \. ip daddr \. th sport \. th dport : meta mark \} goto count\n {2}counter drop\n\}/);
    expect(body).toContain('map flows6 {\n  typeof ip6 saddr . ip6 daddr . th sport . th dport : meta mark\n  size 65536\n  flags dynamic,timeout\n  timeout 600s\n}');
    expect(p.desired.sysctls).toContainEqual({ key: 'net.ipv6.conf.all.forwarding', value: '1' });
  });

  it('no VIP: nothing at all', () => {
    expect(planIngress([], config, { self: 'n1', now: 0, previousSlots: new Map() }).desired).toEqual({});
  });

  it('slots run out: the endpoints beyond them are reported, never given a slot in use', () => {
    const r = allocateSlots([service(THREE)], new Map([['198.19.3.10', { slot: 1 }]]), { slots: 2, now: 0, drainTimeoutMs: 1 });
    expect([...r.slots].map(([a, s]) => [a, s.slot])).toEqual([['198.19.3.10', 1], ['198.19.3.11', 2]]);
    expect(r.unslotted).toEqual(['198.19.4.10']);
  });
});

describe('the pod side', () => {
  it('GRE devices in metadata mode holding the VIPs, loose reverse-path filtering, and only VIP traffic let in through them', () => {
    const s = podState(['203.0.113.80', '2001:db8:80::1']);
    expect(s.links).toEqual([{ kind: 'gre', name: 'weft-gre0', external: true }, { kind: 'ip6gre', name: 'weft-gre6', external: true }]);
    expect(s.addresses).toEqual([{ dev: 'weft-gre0', address: '203.0.113.80/32' }, { dev: 'weft-gre6', address: '2001:db8:80::1/128' }]);
    expect(s.sysctls).toEqual([
      { key: 'net.ipv4.conf.weft-gre0.rp_filter', value: '0' },
      { key: 'net.ipv4.conf.all.rp_filter', value: '2' },
      { key: 'net.ipv6.conf.weft-gre6.accept_dad', value: '0' },
    ]);
    expect(s.nftables?.[0]?.body).toContain('iifname "weft-gre0" ip daddr != { 203.0.113.80 } drop');
  });
});
