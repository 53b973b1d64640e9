import type { DesiredState, Family, Link, Route, Rule } from '@weft/core';
import {
  allocateSlots,
  changedBuckets,
  classificationTable,
  jhashSeed,
  maglevTable,
  type MaglevTable,
  markLayout,
  type PlannedEndpoint,
  type SlotRecord,
  tableSeed,
  type TunnelService,
} from '@weft/service-tunnels';
import { DEVICES, type GreTunnelConfig, RULE_PRIORITY } from './config.js';

/** The plugin's nftables table, on ingress nodes and in pods. */
export const NFT_TABLE = 'weft-gre-tunnel';

/** One VIP on an ingress node. */
export interface VipPlan {
  readonly vip: string;
  readonly family: Family;
  readonly service: string;
  readonly affinity: TunnelService['affinity'];
  /** The seed of its table and of the kernel's jhash (32 bits, from the same text). */
  readonly seed: string;
  readonly jhashSeed: number;
  readonly table: MaglevTable;
  readonly endpoints: readonly PlannedEndpoint[];
  /** How long the table took to build (ms). */
  readonly buildMs: number;
}

/** What an ingress node wants: its VIPs, the endpoint slots, and the desired state. */
export interface IngressPlan {
  readonly vips: readonly VipPlan[];
  readonly slots: ReadonlyMap<string, SlotRecord>;
  /** Endpoints that got no slot (every slot taken). */
  readonly unslotted: readonly string[];
  readonly desired: DesiredState;
}

/**
 * The ingress node's plan: per VIP a Maglev table over its active endpoints (sorted, shared seed), an nftables map
 * from bucket to the endpoint's slot mark, and per slot an ip rule (fwmark → the slot's table) and a route for each
 * VIP the endpoint serves that carries the packet to the pod through the GRE device in metadata mode
 * (`encap ip dst <pod IP>`). A flow's first packet is hashed (jhash of its addresses and ports, or of the client's
 * address for client affinity) into a bucket; its mark is pinned in a flow map, so that the flow stays with its
 * endpoint while that endpoint lives (draining ones included) whatever the table does after.
 */
export function planIngress(
  services: readonly TunnelService[],
  config: Pick<GreTunnelConfig, 'seed' | 'seedPerNode' | 'tableSize' | 'fwmarkMask' | 'tableBase' | 'drainTimeout' | 'pins'>,
  context: { self: string; now: number; previousSlots: ReadonlyMap<string, SlotRecord>; previousTables?: ReadonlyMap<string, MaglevTable> },
): IngressPlan {
  const layout = markLayout(config.fwmarkMask);
  const { slots, states, unslotted } = allocateSlots(services, context.previousSlots, { slots: layout.slots, now: context.now, drainTimeoutMs: config.drainTimeout });
  const mark = (address: string) => (slots.get(address)?.slot ?? 0) * 2 ** layout.shift;
  const vips: VipPlan[] = [];
  const routes: Route[] = [];
  const families = new Set<Family>();
  for (const s of services) {
    const base = tableSeed(config.seed, s);
    for (const vip of s.vips) {
      const family: Family = vip.includes(':') ? 6 : 4;
      const endpoints = s.endpoints.filter((e) => e.family === family && slots.has(e.address));
      const seed = `${config.seedPerNode ? `${base}/${context.self}` : base}/${vip}`;
      const active = endpoints.filter((e) => states.get(e.address) === 'active').map((e) => e.address);
      const previous = context.previousTables?.get(vip);
      const started = performance.now();
      const table = previous && previous.seed === seed && previous.table.length === config.tableSize && sameList(previous.endpoints, active) ? previous : maglevTable(active, seed, config.tableSize);
      const buildMs = performance.now() - started;
      const counts = new Map<string, number>();
      for (const i of table.table) if (i >= 0) counts.set(table.endpoints[i] as string, (counts.get(table.endpoints[i] as string) ?? 0) + 1);
      vips.push({
        vip,
        family,
        service: `${s.namespace}/${s.name}`,
        affinity: s.affinity,
        seed,
        jhashSeed: jhashSeed(seed),
        table,
        buildMs,
        endpoints: endpoints.map((e) => ({ address: e.address, state: states.get(e.address) ?? 'active', slot: slots.get(e.address)?.slot ?? 0, buckets: counts.get(e.address) ?? 0 })),
      });
      for (const e of endpoints) {
        if (states.get(e.address) === 'drained') continue;
        families.add(family);
        routes.push({ dst: `${vip}/${family === 4 ? 32 : 128}`, table: config.tableBase + (slots.get(e.address)?.slot ?? 0), dev: DEVICES[family], ipEncap: { dst: e.address } });
      }
    }
  }
  const used = new Map<number, Family>();
  for (const v of vips) for (const e of v.endpoints) if (e.state !== 'drained') used.set(e.slot, v.family);
  const rules: Rule[] = [...used].sort(([a], [b]) => a - b).map(([slot, family]) => ({
    priority: RULE_PRIORITY,
    family,
    fwmark: slot * 2 ** layout.shift,
    fwmask: config.fwmarkMask,
    table: config.tableBase + slot,
  }));
  const links: Link[] = [...families].sort().map((f) => ({ kind: f === 4 ? 'gre' : 'ip6gre', name: DEVICES[f], external: true }));
  const desired: DesiredState =
    vips.length === 0
      ? {}
      : {
          links,
          routes,
          rules,
          nftables: [classificationTable(NFT_TABLE, vips, { mask: config.fwmarkMask, mark, pins: { size: config.pins.size, timeoutMs: config.pins.timeout }, sendOnly: [DEVICES[4], DEVICES[6]] })],
          sysctls: [
            { key: 'net.ipv4.ip_forward', value: '1' },
            ...(vips.some((v) => v.family === 6) ? [{ key: 'net.ipv6.conf.all.forwarding', value: '1' }] : []),
          ],
        };
  return { vips, slots, unslotted, desired };
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...b].sort().every((x, i) => x === a[i]);

/** The buckets a VIP's table moved since the last plan (what the status and a metric report). */
export function movedBuckets(before: MaglevTable | undefined, after: MaglevTable): number {
  if (!before || before.table.length !== after.table.length) return 0;
  return changedBuckets(before, after).length;
}

/** What a pod that is an endpoint gets in its namespace: the GRE devices in metadata mode, its VIPs on them. */
export function podState(vips: readonly string[]): DesiredState {
  const families = new Set<Family>(vips.map((v) => (v.includes(':') ? 6 : 4)));
  const links: Link[] = [...families].sort().map((f) => ({ kind: f === 4 ? 'gre' : 'ip6gre', name: DEVICES[f], external: true }));
  const v4 = vips.filter((v) => !v.includes(':'));
  const v6 = vips.filter((v) => v.includes(':'));
  // Only packets to the VIPs come in through the GRE devices: a decapsulated packet to anything else (the pod's own
  // address, another network) is dropped.
  const body = [
    'chain prerouting {',
    '  type filter hook prerouting priority raw; policy accept;',
    ...(v4.length > 0 ? [`  iifname "${DEVICES[4]}" ip daddr != { ${v4.join(', ')} } drop`] : []),
    ...(v6.length > 0 ? [`  iifname "${DEVICES[6]}" ip6 daddr != { ${v6.join(', ')} } drop`] : []),
    `  iifname "${DEVICES[4]}" meta nfproto ipv6 drop`,
    '}',
  ].join('\n');
  return {
    links,
    addresses: vips.map((v) => ({ dev: v.includes(':') ? DEVICES[6] : DEVICES[4], address: `${v}/${v.includes(':') ? 128 : 32}` })),
    sysctls: [
      // The reply leaves through the pod's own interface, not the one the request came in by: strict reverse-path
      // filtering (which a pod inherits from the node for IPv4) would drop the request; loose (2) lets it in.
      ...(families.has(4) ? [{ key: `net.ipv4.conf.${DEVICES[4]}.rp_filter`, value: '0' }, { key: 'net.ipv4.conf.all.rp_filter', value: '2' }] : []),
      ...(families.has(6) ? [{ key: `net.ipv6.conf.${DEVICES[6]}.accept_dad`, value: '0' }] : []),
    ],
    nftables: [{ family: 'inet', name: NFT_TABLE, body }],
  };
}
