import { createHash } from 'node:crypto';
import type { DesiredState, Family, Link, NftTable, Route, Rule } from '@weft/core';
import { changedBuckets, maglevTable, type MaglevTable, tableSeed, type TunnelService } from '@weft/service-tunnels';
import { DEVICES, type GreTunnelConfig, markLayout, RULE_PRIORITY } from './config.js';

/** The plugin's nftables table, on ingress nodes and in pods. */
export const NFT_TABLE = 'weft-gre-tunnel';

/** What the plugin remembers of an endpoint slot on an ingress node (kept in its state directory across restarts). */
export interface SlotRecord {
  readonly slot: number;
  /** When this node first saw the endpoint draining (ms since the epoch); absent while it is active. */
  readonly drainingSince?: number;
}

/** One endpoint of a VIP as an ingress node routes it. */
export interface PlannedEndpoint {
  readonly address: string;
  readonly state: 'active' | 'draining' | 'drained';
  readonly slot: number;
  /** Buckets of the VIP's table that lead to it. */
  readonly buckets: number;
}

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

/** The 32-bit jhash seed for a table seed (the kernel hashes the flow with it; every ingress node derives the same). */
export function jhashSeed(seed: string): number {
  return createHash('sha256').update(`jhash/${seed}`).digest().readUInt32BE(0);
}

/** A mark as nft lists it: `0x00010000`. */
export const markText = (mark: number): string => `0x${mark.toString(16).padStart(8, '0')}`;

/**
 * Endpoint slots on this ingress node: each endpoint keeps the slot it had (a flow pinned in conntrack to a slot must
 * keep reaching the same pod, across restarts too); a new one takes the lowest free slot; one no longer wanted, or
 * drained past the timeout, frees its slot.
 */
export function allocateSlots(
  services: readonly TunnelService[],
  previous: ReadonlyMap<string, SlotRecord>,
  options: { slots: number; now: number; drainTimeoutMs: number },
): { slots: Map<string, SlotRecord>; states: Map<string, PlannedEndpoint['state']>; unslotted: string[] } {
  const wanted = new Map<string, 'active' | 'draining'>();
  for (const s of services) for (const e of s.endpoints) if (wanted.get(e.address) !== 'active') wanted.set(e.address, e.state);
  const slots = new Map<string, SlotRecord>();
  const states = new Map<string, PlannedEndpoint['state']>();
  const taken = new Set<number>();
  const fresh: string[] = [];
  for (const [address, state] of [...wanted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const had = previous.get(address);
    if (!had) {
      fresh.push(address);
      continue;
    }
    const drainingSince = state === 'draining' ? (had.drainingSince ?? options.now) : undefined;
    const drained = drainingSince !== undefined && options.now - drainingSince >= options.drainTimeoutMs;
    slots.set(address, { slot: had.slot, ...(drainingSince !== undefined ? { drainingSince } : {}) });
    states.set(address, drained ? 'drained' : state);
    taken.add(had.slot);
  }
  const unslotted: string[] = [];
  let next = 1;
  for (const address of fresh) {
    while (taken.has(next)) next += 1;
    if (next > options.slots) {
      unslotted.push(address);
      continue;
    }
    const state = wanted.get(address) as 'active' | 'draining';
    taken.add(next);
    slots.set(address, { slot: next, ...(state === 'draining' ? { drainingSince: options.now } : {}) });
    states.set(address, state);
  }
  return { slots, states, unslotted };
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
          nftables: [ingressTable(vips, config.fwmarkMask, mark, { size: config.pins.size, timeoutMs: config.pins.timeout })],
          sysctls: [
            { key: 'net.ipv4.ip_forward', value: '1' },
            ...(vips.some((v) => v.family === 6) ? [{ key: 'net.ipv6.conf.all.forwarding', value: '1' }] : []),
          ],
        };
  return { vips, slots, unslotted, desired };
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...b].sort().every((x, i) => x === a[i]);

/**
 * The ingress node's nftables table: VIP traffic enters a chain per VIP, which takes a flow's pinned mark while its
 * endpoint lives, or hashes the flow into the VIP's bucket map and pins the result; packets are counted per endpoint;
 * a VIP with no endpoint drops. Nothing may enter through the plugin's GRE devices (they only send).
 */
function ingressTable(vips: readonly VipPlan[], mask: number, mark: (address: string) => number, pins: { size: number; timeoutMs: number }): NftTable {
  const m = markText(mask);
  const lines: string[] = [];
  const v4 = vips.map((v, i) => [v, i] as const).filter(([v]) => v.family === 4);
  const v6 = vips.map((v, i) => [v, i] as const).filter(([v]) => v.family === 6);
  if (v4.length > 0) lines.push(`map vip4 {`, `  type ipv4_addr : verdict`, `  elements = { ${v4.map(([v, i]) => `${v.vip} : goto vip${String(i)}`).join(', ')} }`, `}`);
  if (v6.length > 0) lines.push(`map vip6 {`, `  type ipv6_addr : verdict`, `  elements = { ${v6.map(([v, i]) => `${v.vip} : goto vip${String(i)}`).join(', ')} }`, `}`);
  lines.push('set live {', '  type mark', '}', 'map counted {', '  type mark : counter', '}');
  // The flows seen, and the slot each went to: written by the packet path, refreshed by each packet, forgotten after
  // pinTimeout without one. Not conntrack: an ingress node sees one direction of a flow only (the replies leave the pod
  // straight to the client), so conntrack calls every packet after the SYN invalid and keeps no mark for it.
  for (const [f, ip] of [[4, 'ip'], [6, 'ip6']] as const) {
    if (!vips.some((v) => v.family === f)) continue;
    lines.push(`map flows${String(f)} {`, `  typeof ${ip} saddr . ${ip} daddr . th sport . th dport : meta mark`, `  size ${String(pins.size)}`, '  flags dynamic,timeout', `  timeout ${String(Math.round(pins.timeoutMs / 1000))}s`, '}');
  }
  for (const [i, v] of vips.entries()) lines.push(`map b${String(i)} {`, `  typeof numgen inc mod ${String(v.table.table.length)} : meta mark`, `  size ${String(v.table.table.length + 1)}`, '}');
  lines.push(
    'chain prerouting {',
    '  type filter hook prerouting priority mangle; policy accept;',
    `  iifname { "${DEVICES[4]}", "${DEVICES[6]}" } drop`,
    ...(v4.length > 0 ? ['  ip daddr vmap @vip4'] : []),
    ...(v6.length > 0 ? ['  ip6 daddr vmap @vip6'] : []),
    '}',
  );
  for (const [i, v] of vips.entries()) {
    const ip = v.family === 4 ? 'ip' : 'ip6';
    const flow = `${ip} saddr . ${ip} daddr . th sport . th dport`;
    const hashed = v.affinity === 'client' ? `${ip} saddr` : flow;
    const flows = `@flows${String(v.family)}`;
    lines.push(
      `chain vip${String(i)} {`,
      // A flow seen before goes where it went, while that endpoint lives (a draining one included); each packet keeps
      // the pin fresh.
      `  meta mark set ${flow} map ${flows} meta mark & ${m} @live update ${flows} { ${flow} : meta mark } goto count`,
      // A new flow (or one whose endpoint is gone): its bucket in the VIP's table, pinned.
      ...(v.table.endpoints.length > 0 ? [`  meta mark set jhash ${hashed} mod ${String(v.table.table.length)} seed 0x${v.jhashSeed.toString(16)} map @b${String(i)} add ${flows} { ${flow} : meta mark } goto count`] : []),
      '  counter drop',
      '}',
    );
  }
  lines.push('chain count {', `  counter name meta mark & ${m} map @counted`, '}');
  const elements: Record<string, string[]> = {};
  const live = new Set<string>();
  const counted: string[] = [];
  const counters: string[] = [];
  const seen = new Set<string>();
  for (const [i, v] of vips.entries()) {
    elements[`b${String(i)}`] = Array.from(v.table.table, (e, b) => `${String(b)} : ${markText(mark(v.table.endpoints[e] as string))}`);
    for (const e of v.endpoints) {
      if (e.state === 'drained' || seen.has(e.address)) continue;
      seen.add(e.address);
      const text = markText(mark(e.address));
      live.add(text);
      counters.push(`e${String(e.slot)}`);
      counted.push(`${text} : "e${String(e.slot)}"`);
    }
  }
  if (live.size > 0) elements.live = [...live];
  if (counted.length > 0) elements.counted = counted;
  return { family: 'inet', name: NFT_TABLE, body: lines.join('\n'), elements, counters };
}

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
