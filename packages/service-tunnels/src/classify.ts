import { createHash } from 'node:crypto';
import type { Family, NftTable } from '@weft/core';
import type { MaglevTable } from './maglev.js';
import type { Affinity, TunnelService } from './services.js';

/*
 * The classification an ingress node runs in the kernel, shared by the tunnel plugins: which endpoint slot a flow of a
 * VIP goes to (a Maglev bucket map, jhash with the shared seed), remembered per flow, counted per endpoint. Each
 * plugin routes a slot's mark its own way (GRE: a rule and a table whose VIP route carries `encap ip`).
 */

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

/** The 32-bit jhash seed for a table seed (the kernel hashes the flow with it; every ingress node derives the same). */
export function jhashSeed(seed: string): number {
  return createHash('sha256').update(`jhash/${seed}`).digest().readUInt32BE(0);
}

/** A mark as nft lists it: `0x00010000`. */
export const markText = (mark: number): string => `0x${mark.toString(16).padStart(8, '0')}`;

/**
 * Endpoint slots on this ingress node: each endpoint keeps the slot it had (a flow pinned to a slot must
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

/** The mark layout: slot N is `N << shift`, N in 1..slots. */
export function markLayout(mask: number): { shift: number; slots: number; mask: number } {
  const shift = Math.log2(mask & -mask);
  return { shift, slots: mask / 2 ** shift, mask };
}

/** One VIP as the classification sees it: its table, and its endpoints with their slots and states. */
export interface ClassifiedVip {
  readonly vip: string;
  readonly family: Family;
  readonly affinity: Affinity;
  readonly jhashSeed: number;
  readonly table: MaglevTable;
  readonly endpoints: readonly Pick<PlannedEndpoint, 'address' | 'state' | 'slot'>[];
}

/**
 * The ingress node's nftables table `inet NAME`: VIP traffic enters a chain per VIP, which takes a flow's pinned mark
 * while its endpoint lives, or hashes the flow into the VIP's bucket map and pins the result; packets are counted per
 * endpoint (counter `e<slot>`); a VIP with no endpoint drops. Nothing may enter through the `sendOnly` devices (a
 * tunnel device in metadata mode would take packets from anyone).
 */
export function classificationTable(
  name: string,
  vips: readonly ClassifiedVip[],
  options: { readonly mask: number; readonly mark: (address: string) => number; readonly pins: { readonly size: number; readonly timeoutMs: number }; readonly sendOnly: readonly string[] },
): NftTable {
  const { mask, mark, pins } = options;
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
    ...(options.sendOnly.length > 0 ? [`  iifname { ${options.sendOnly.map((d) => `"${d}"`).join(', ')} } drop`] : []),
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
  return { family: 'inet', name, body: lines.join('\n'), elements, counters };
}

