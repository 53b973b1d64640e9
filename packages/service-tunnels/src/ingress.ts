import { type DesiredState, describeValue, duration, type Family, intInRange, type NftCounter, type Route, type Rule, z } from '@weft/core';
import { allocateSlots, classificationTable, jhashSeed, markLayout, type PlannedEndpoint, type SlotRecord } from './classify.js';
import { changedBuckets, isPrime, MAX_TABLE_SIZE, maglevTable, type MaglevTable, tableSeed } from './maglev.js';
import type { TunnelService } from './services.js';

/*
 * What an ingress node of any tunnel plugin plans the same way: the config of the classification, the VIPs' Maglev
 * tables over the endpoint slots, the nftables table, the per-slot rules — everything but the route that carries a
 * packet to its endpoint, which each plugin makes its own way.
 */

/** A mask of contiguous bits, at least 4 and at most 16 of them (15 to 65,535 endpoint slots). */
function markMask() {
  return z.int().refine(
    (m) => {
      if (m <= 0 || m > 0x7fffffff) return false;
      const shift = Math.log2(m & -m);
      const bits = m / 2 ** shift;
      return Number.isInteger(Math.log2(bits + 1)) && Math.log2(bits + 1) >= 4 && Math.log2(bits + 1) <= 16;
    },
    { error: (iss) => `expected a mask of 4-16 contiguous bits like 0x0fff0000, got ${describeValue(iss.input)}` },
  );
}

/**
 * The config keys of the classification, the same in every tunnel plugin's section (spread them into its
 * `z.strictObject`, and check them with {@link checkClassificationConfig}). `tableBase` differs per plugin, so that
 * two tunnel plugins on one node keep their routing tables apart.
 */
export function classificationConfig(defaults: { readonly tableBase: number }) {
  return {
    seed: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: (iss) => `expected 1-64 letters, digits, . _ or -, got ${describeValue(iss.input)}` })
      .optional()
      .meta({ description: "the Maglev seed every ingress node shares; absent: each Service's own, from its UID (the same on every node)" }),
    seedPerNode: z
      .boolean()
      .default(false)
      .meta({ description: "for comparison only: each ingress node seeds its tables with its own name (kube-service-tunnel's random per-node seed), so that a flow that changes ingress node changes endpoint — what the shared seed prevents" }),
    tableSize: intInRange(251, MAX_TABLE_SIZE)
      .refine(isPrime, { error: (iss) => `expected a prime (Maglev's table size), got ${describeValue(iss.input)}` })
      .default(16_381)
      .meta({
        description:
          'buckets per VIP (a prime, at least 100 × the endpoints for shares within 1 %): every ingress node keeps one nftables map element per bucket. 16,381 serves up to about 160 endpoints within 1 %; 65,537 up to 650, at 4× the kernel memory',
      }),
    fwmarkMask: markMask()
      .default(0x0fff0000)
      .meta({ description: "the packet mark bits that carry a flow's endpoint slot on an ingress node (4,095 slots by default); keep them clear of other users' (kube-proxy's 0x4000/0x8000, Calico's, Cilium's). The tunnel plugins may share them: each one's tables hold only its own VIPs" }),
    tableBase: intInRange(256, 0x7fff0000)
      .default(defaults.tableBase)
      .meta({ description: "the routing table of endpoint slot N is tableBase + N (ingress nodes); keep it apart from the other tunnel plugin's (gre-tunnel 0x5700, mpls-lwtunnel 0x5800)" }),
    pins: z
      .strictObject({
        size: intInRange(1024, 4_194_304).default(65_536).meta({ description: 'flows pinned at once per address family on an ingress node (a flow beyond it is hashed packet by packet: the same endpoint while the table stays)' }),
        timeout: duration({ min: 10_000, max: 86_400_000 }).prefault('10m').meta({ description: "how long a flow's pin outlives its last packet" }),
      })
      .prefault({})
      .meta({ description: "each flow's endpoint, remembered on the ingress node that saw it, so that a change of the table does not move it" }),
    drainTimeout: duration({ min: 1000, max: 86_400_000 })
      .prefault('5m')
      .meta({ description: 'how long a draining endpoint keeps its established flows before they are moved' }),
  };
}

/** The classification settings as parsed. */
export interface ClassificationSettings {
  readonly seed?: string | undefined;
  readonly seedPerNode: boolean;
  readonly tableSize: number;
  readonly fwmarkMask: number;
  readonly tableBase: number;
  readonly pins: { readonly size: number; readonly timeout: number };
  readonly drainTimeout: number;
}

/** The checks across keys (a `superRefine`): the slots' tables must stay inside the routing tables, off main/local/default. */
export function checkClassificationConfig(c: Pick<ClassificationSettings, 'fwmarkMask' | 'tableBase'>, ctx: z.RefinementCtx): void {
  const { slots } = markLayout(c.fwmarkMask);
  if (c.tableBase + slots > 0xffffffff) ctx.addIssue({ code: 'custom', path: ['tableBase'], message: `tableBase + ${String(slots)} slots passes the last routing table` });
  if (c.tableBase <= 255 && c.tableBase + slots >= 253) ctx.addIssue({ code: 'custom', path: ['tableBase'], message: 'the slot tables would include main, local or default (253-255)' });
}

/** One VIP on an ingress node. */
export interface IngressVip {
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

/** What an ingress node wants, the carrying routes included. */
export interface IngressClassification {
  readonly vips: readonly IngressVip[];
  readonly slots: ReadonlyMap<string, SlotRecord>;
  /** Endpoints that got no slot (every slot taken). */
  readonly unslotted: readonly string[];
  /** The kernel state: the routes, the rules, the nftables table, forwarding (empty without VIPs). */
  readonly desired: DesiredState;
}

/**
 * The ingress node's plan: per VIP a Maglev table over its active endpoints (sorted, shared seed), the nftables map
 * from bucket to the endpoint's slot mark (pinned per flow), and per slot an ip rule (fwmark → the slot's table)
 * whose table holds, for each VIP the endpoint serves, the route `carry` makes — the plugin's way to the endpoint.
 * `previousTables` is reused where the endpoints and seed did not change (a table costs milliseconds to build).
 */
export function planClassification(
  services: readonly TunnelService[],
  settings: ClassificationSettings,
  context: { readonly self: string; readonly now: number; readonly previousSlots: ReadonlyMap<string, SlotRecord>; readonly previousTables?: ReadonlyMap<string, MaglevTable> | undefined },
  plugin: {
    readonly nftTable: string;
    readonly rulePriority: number;
    /** Devices nothing may come in through (a tunnel device in metadata mode takes packets from anyone). */
    readonly sendOnly: readonly string[];
    /** The route (without destination and table) that carries a VIP's packet to this endpoint. */
    readonly carry: (endpoint: string, vip: string, family: Family) => Omit<Route, 'dst' | 'table'>;
  },
): IngressClassification {
  const layout = markLayout(settings.fwmarkMask);
  const { slots, states, unslotted } = allocateSlots(services, context.previousSlots, { slots: layout.slots, now: context.now, drainTimeoutMs: settings.drainTimeout });
  const mark = (address: string) => (slots.get(address)?.slot ?? 0) * 2 ** layout.shift;
  const vips: IngressVip[] = [];
  const routes: Route[] = [];
  for (const s of services) {
    const base = tableSeed(settings.seed, s);
    for (const vip of s.vips) {
      const family: Family = vip.includes(':') ? 6 : 4;
      const endpoints = s.endpoints.filter((e) => e.family === family && slots.has(e.address));
      const seed = `${settings.seedPerNode ? `${base}/${context.self}` : base}/${vip}`;
      const active = endpoints.filter((e) => states.get(e.address) === 'active').map((e) => e.address);
      const previous = context.previousTables?.get(vip);
      const started = performance.now();
      const table = previous && previous.seed === seed && previous.table.length === settings.tableSize && sameList(previous.endpoints, active) ? previous : maglevTable(active, seed, settings.tableSize);
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
        routes.push({ dst: `${vip}/${family === 4 ? 32 : 128}`, table: settings.tableBase + (slots.get(e.address)?.slot ?? 0), ...plugin.carry(e.address, vip, family) });
      }
    }
  }
  const used = new Map<number, Family>();
  for (const v of vips) for (const e of v.endpoints) if (e.state !== 'drained') used.set(e.slot, v.family);
  const rules: Rule[] = [...used].sort(([a], [b]) => a - b).map(([slot, family]) => ({
    priority: plugin.rulePriority,
    family,
    fwmark: slot * 2 ** layout.shift,
    fwmask: settings.fwmarkMask,
    table: settings.tableBase + slot,
  }));
  const desired: DesiredState =
    vips.length === 0
      ? {}
      : {
          routes,
          rules,
          nftables: [classificationTable(plugin.nftTable, vips, { mask: settings.fwmarkMask, mark, pins: { size: settings.pins.size, timeoutMs: settings.pins.timeout }, sendOnly: plugin.sendOnly })],
          sysctls: [
            { key: 'net.ipv4.ip_forward', value: '1' },
            ...(vips.some((v) => v.family === 6) ? [{ key: 'net.ipv6.conf.all.forwarding', value: '1' }] : []),
          ],
        };
  return { vips, slots, unslotted, desired };
}

const sameList = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...b].sort().every((x, i) => x === a[i]);

/**
 * The Maglev tables an ingress node last used, per VIP, and how many buckets the last change of each moved (the
 * status and a metric report it). Passed back to {@link planClassification} as `previousTables`.
 */
export class TableMemory {
  readonly tables = new Map<string, MaglevTable>();
  readonly moved = new Map<string, number>();

  /** Takes a plan's tables; a VIP no longer planned is forgotten. */
  update(vips: readonly Pick<IngressVip, 'vip' | 'table'>[]): void {
    for (const v of vips) {
      const before = this.tables.get(v.vip);
      if (before === v.table) continue;
      if (before && before.table.length === v.table.table.length) this.moved.set(v.vip, changedBuckets(before, v.table).length);
      this.tables.set(v.vip, v.table);
    }
    for (const vip of [...this.tables.keys()]) {
      if (vips.some((v) => v.vip === vip)) continue;
      this.tables.delete(vip);
      this.moved.delete(vip);
    }
  }

  clear(): void {
    this.tables.clear();
    this.moved.clear();
  }
}

/** A VIP as the status serves it: its table's figures, and each endpoint with its packets and bytes (its counter). */
export function vipStatus<E extends PlannedEndpoint>(
  v: Omit<IngressVip, 'endpoints'> & { readonly endpoints: readonly E[] },
  counters: ReadonlyMap<string, NftCounter>,
  moved: ReadonlyMap<string, number>,
): { vip: string; service: string; affinity: string; seed: string; tableSize: number; buildMs: number; bucketsMovedLastChange: number; endpoints: (E & { packets: number; bytes: number })[] } {
  return {
    vip: v.vip,
    service: v.service,
    affinity: v.affinity,
    seed: v.seed,
    tableSize: v.table.table.length,
    buildMs: Math.round(v.buildMs * 1000) / 1000,
    bucketsMovedLastChange: moved.get(v.vip) ?? 0,
    endpoints: v.endpoints.map((e) => ({ ...e, packets: counters.get(`e${String(e.slot)}`)?.packets ?? 0, bytes: counters.get(`e${String(e.slot)}`)?.bytes ?? 0 })),
  };
}

/** When a draining endpoint's timeout ends, if one does: a reason for the plugin to come back then. */
export function nextDrainEnd(slots: ReadonlyMap<string, SlotRecord>, drainTimeoutMs: number, now: number): number | undefined {
  let next: number | undefined;
  for (const r of slots.values()) {
    if (r.drainingSince === undefined) continue;
    const left = r.drainingSince + drainTimeoutMs - now;
    if (left > 0) next = Math.min(next ?? left, left + 50);
  }
  return next;
}
