import {
  type DesiredState,
  type Family,
  familyOf,
  type FdbEntry,
  hostNetwork,
  type Link,
  type Neighbour,
  type Network,
  type NodeInfo,
  networkContains,
  parseNetwork,
  type Route,
  selectsNode,
} from '@weft/core';
import { LINK_PREFIX, type Segment, type VxlanConfig } from './config.js';
import { PodNetworks, readVtep, vtepMAC } from './facts.js';
import { allocate } from './pool.js';

/** The all-zero MAC: an FDB entry for it floods broadcast, multicast and unknown unicast to its destination. */
export const FLOOD_MAC = '00:00:00:00:00:00';

/** A node the overlay or a segment leaves out, and why: `pending` until it publishes, `invalid` for bad data. */
export interface Excluded {
  readonly node: string;
  readonly kind: 'pending' | 'invalid';
  readonly reason: string;
}

/** This node's VTEP on the overlay. */
export interface SelfVtep {
  readonly name: string;
  readonly mac: string;
  /** The underlay address the VTEP sends from. */
  readonly underlay: string;
  readonly location: string | undefined;
  readonly podCIDRs: readonly string[];
  /** This node's own networks on the underlay (`198.18.1.0/24`): a peer on one of them is reached directly. */
  readonly networks: readonly string[];
}

/** An overlay peer as planned. */
export interface OverlayPeer {
  readonly name: string;
  readonly mac: string;
  readonly underlay: string;
  /** Pod CIDRs routed over the underlay (same subnet and location), without encapsulation. */
  readonly direct: readonly string[];
  /** Pod CIDRs routed through the VTEP. */
  readonly encapsulated: readonly string[];
  /** Why direct or not: `same subnet`, `other subnet`, `other location`, `direct routing off`, `other family`. */
  readonly path: string;
}

/** What the overlay plans for this node. */
export interface OverlayPlan {
  readonly self: SelfVtep;
  readonly peers: readonly OverlayPeer[];
  readonly excluded: readonly Excluded[];
}

/** The inner address of a node's VTEP for one pod CIDR: the CIDR's first address (flannel's choice). */
export function vtepInner(podCIDR: string): string | undefined {
  return parseNetwork(podCIDR) ? podCIDR.slice(0, podCIDR.indexOf('/')) : undefined;
}

/** Whether `ip` lies in one of `networks`. */
const onNetworks = (networks: readonly string[], ip: string) =>
  networks.some((n) => {
    const net = parseNetwork(n);
    return net !== undefined && networkContains(net, ip);
  });

/**
 * The overlay for this node: every other node that published a valid VTEP, and how its pod CIDRs are reached. A
 * peer with bad data is left out (and said why), never the others; two nodes publishing one MAC or one underlay
 * address: the one the cluster knew first keeps it, and neither when they are equally old.
 */
export function planOverlay(input: { readonly nodes: readonly NodeInfo[]; readonly self: SelfVtep; readonly config: Pick<VxlanConfig, 'directRouting'>; readonly podNetworks: readonly string[] }): OverlayPlan {
  const { self, config } = input;
  const family = familyOf(self.underlay) as Family;
  const allPods = new PodNetworks([...input.podNetworks, ...input.nodes.flatMap((n) => n.podCIDRs)]);
  const excluded: Excluded[] = [];
  const candidates: { node: NodeInfo; mac: string; underlay: string }[] = [];
  for (const node of input.nodes) {
    if (node.name === self.name) continue;
    const read = readVtep(node, allPods);
    if (read.pending) {
      excluded.push({ node: node.name, kind: 'pending', reason: 'no VTEP published yet' });
      continue;
    }
    if (read.problem !== undefined || read.vtep === undefined) {
      excluded.push({ node: node.name, kind: 'invalid', reason: read.problem ?? 'unreadable' });
      continue;
    }
    if (familyOf(read.vtep.underlay) !== family) {
      excluded.push({ node: node.name, kind: 'invalid', reason: `its VTEP is on IPv${String(familyOf(read.vtep.underlay))}, this node's on IPv${String(family)}` });
      continue;
    }
    if (read.vtep.mac === self.mac) {
      excluded.push({ node: node.name, kind: 'invalid', reason: `its VTEP MAC ${read.vtep.mac} is this node's` });
      continue;
    }
    if (node.podCIDRs.length === 0) {
      excluded.push({ node: node.name, kind: 'pending', reason: 'no pod CIDR' });
      continue;
    }
    candidates.push({ node, mac: read.vtep.mac, underlay: read.vtep.underlay });
  }
  // A MAC or an underlay address two nodes publish: the older keeps it; equally old, neither.
  const losers = new Map<string, string>();
  for (const key of ['mac', 'underlay'] as const) {
    const by = new Map<string, (typeof candidates)[number][]>();
    for (const c of candidates) by.set(c[key], [...(by.get(c[key]) ?? []), c]);
    for (const [value, group] of by) {
      if (group.length < 2) continue;
      const oldest = Math.min(...group.map((c) => c.node.createdAt));
      const tie = group.filter((c) => c.node.createdAt === oldest).length > 1;
      const keeper = tie ? undefined : group.find((c) => c.node.createdAt === oldest);
      for (const c of group) {
        if (c === keeper) continue;
        losers.set(c.node.name, `its VTEP ${key === 'mac' ? 'MAC' : 'underlay address'} ${value} is also ${group.filter((o) => o !== c).map((o) => o.node.name).join(', ')}'s${tie ? ' (equally old: neither keeps it)' : ', which the cluster knew first'}`);
      }
    }
  }
  const peers: OverlayPeer[] = [];
  for (const c of candidates) {
    const lost = losers.get(c.node.name);
    if (lost !== undefined) {
      excluded.push({ node: c.node.name, kind: 'invalid', reason: lost });
      continue;
    }
    const sameLocation = self.location === undefined || c.node.location === undefined || self.location === c.node.location;
    const sameSubnet = onNetworks(self.networks, c.underlay);
    const direct: string[] = [];
    const encapsulated: string[] = [];
    let path: string;
    if (!config.directRouting) path = 'direct routing off';
    else if (!sameLocation) path = 'other location';
    else if (!sameSubnet) path = 'other subnet';
    else path = 'same subnet';
    for (const cidr of c.node.podCIDRs) {
      // Direct only over the underlay's family: an IPv6 pod CIDR behind an IPv4 underlay is encapsulated.
      if (path === 'same subnet' && familyOf(vtepInner(cidr) ?? '') === family) direct.push(cidr);
      else encapsulated.push(cidr);
    }
    if (path === 'same subnet' && encapsulated.length > 0) path = direct.length > 0 ? 'same subnet (other family encapsulated)' : 'other family';
    peers.push({ name: c.node.name, mac: c.mac, underlay: c.underlay, direct, encapsulated, path });
  }
  excluded.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { self, peers, excluded };
}

/** A segment as planned on this node. */
export interface SegmentPlan {
  readonly name: string;
  readonly vni: number;
  /** `weft-vx<name>`. */
  readonly interface: string;
  /** Whether this node is a member (else it has no interface for the segment). */
  readonly member: boolean;
  /** The other members this node floods to, with their VTEP MAC and underlay address. */
  readonly peers: readonly { readonly name: string; readonly mac: string; readonly underlay: string }[];
  /** Members left out (no underlay address of the family, no overlay address yet). */
  readonly excluded: readonly Excluded[];
  /** This node's addresses on the segment (besides its link-local one). */
  readonly addresses: readonly string[];
  /** The MAC of this node's interface. */
  readonly mac: string;
  readonly bridge: Segment['bridge'];
  readonly mtu: number | undefined;
}

/**
 * The declared segments as this node takes part in them: for each, whether it is a member, the other members to
 * replicate to, and its addresses. Members are picked by label; their underlay addresses come from `underlayOf`
 * (the node's internal address, or its address on the WireGuard mesh), never from what a node publishes.
 */
export function planSegments(input: {
  readonly nodes: readonly NodeInfo[];
  readonly self: string;
  readonly segments: readonly Segment[];
  readonly underlayOf: (node: NodeInfo) => string | undefined;
}): SegmentPlan[] {
  return input.segments.map((s) => {
    const members = input.nodes.filter((n) => selectsNode(s.nodeSelector, n.labels));
    const me = members.find((n) => n.name === input.self);
    const excluded: Excluded[] = [];
    const peers: SegmentPlan['peers'][number][] = [];
    const seen = new Map<string, string>();
    for (const n of members) {
      const underlay = input.underlayOf(n);
      if (underlay === undefined) {
        excluded.push({ node: n.name, kind: 'pending', reason: 'no underlay address of the segment\'s family yet' });
        continue;
      }
      const other = seen.get(underlay);
      if (other !== undefined) {
        excluded.push({ node: n.name, kind: 'invalid', reason: `its underlay address ${underlay} is also ${other}'s` });
        continue;
      }
      seen.set(underlay, n.name);
      if (n.name !== input.self) peers.push({ name: n.name, mac: vtepMAC(n.name, s.vni), underlay });
    }
    const addresses: string[] = [];
    if (me !== undefined) {
      const own = s.addresses.nodes[me.name];
      if (own !== undefined) addresses.push(...own);
      else {
        for (const p of s.addresses.pools) {
          const pool = parseNetwork(p);
          if (!pool) continue;
          const at = allocated(pool, p, members, s.name).get(me.name);
          if (at !== undefined) addresses.push(`${at}/${String(pool.prefix)}`);
        }
      }
    }
    return {
      name: s.name,
      vni: s.vni,
      interface: `${LINK_PREFIX}${s.name}`,
      member: me !== undefined && input.underlayOf(me) !== undefined,
      peers,
      excluded,
      addresses,
      mac: vtepMAC(input.self, s.vni),
      bridge: s.bridge,
      mtu: s.mtu,
    };
  });
}

/** The last allocation per segment and pool: members unchanged (names and ages), the same addresses without hashing again. */
const allocations = new Map<string, { key: string; result: Map<string, string> }>();

function allocated(pool: Network, text: string, members: readonly NodeInfo[], salt: string): Map<string, string> {
  const key = members.map((m) => `${m.name} ${String(m.createdAt)}`).join('\n');
  const id = `${salt} ${text}`;
  const hit = allocations.get(id);
  if (hit?.key === key) return hit.result;
  const result = allocate(pool, members.map((m) => ({ name: m.name, createdAt: m.createdAt })), salt);
  allocations.set(id, { key, result });
  return result;
}

/** The settings of the devices that are this node's, not the plan's. */
export interface DeviceSettings {
  readonly interface: string;
  readonly vni: number;
  readonly port: number;
  /** The overlay VTEP's MTU. */
  readonly mtu: number;
  /** A segment's MTU when it sets none. */
  readonly segmentMtu: number;
  /** The underlay address segment VTEPs send from (the node's, or its WireGuard overlay address). */
  readonly segmentLocal: string | undefined;
  /** Operator bridges that exist on this node (a segment attaches only to one that does). */
  readonly bridges: ReadonlySet<string>;
}

/**
 * The kernel state of an overlay plan and the segments: for the overlay, the VTEP (no learning), its inner
 * addresses, and per encapsulated peer its FDB entry, its neighbour entries and its routes (onlink through the VTEP);
 * per direct peer plain routes via its underlay address; forwarding on (IPv6 too when it routes IPv6). For each segment this node is a member of, its VTEP with
 * one flooding entry per other member (head-end replication) and one entry for that member's MAC.
 */
export function desiredState(overlay: OverlayPlan | undefined, segments: readonly SegmentPlan[], d: DeviceSettings): DesiredState {
  const links: Link[] = [];
  const addresses: { dev: string; address: string }[] = [];
  const routes: Route[] = [];
  const neighbours: Neighbour[] = [];
  const fdb: FdbEntry[] = [];
  if (overlay) {
    const dev = d.interface;
    links.push({ kind: 'vxlan', name: dev, vni: d.vni, port: d.port, local: overlay.self.underlay, learning: false, address: overlay.self.mac, mtu: d.mtu });
    for (const cidr of overlay.self.podCIDRs) {
      const inner = vtepInner(cidr);
      if (inner !== undefined) addresses.push({ dev, address: hostNetwork(inner) });
    }
    for (const p of overlay.peers) {
      for (const cidr of p.direct) routes.push({ dst: cidr, via: p.underlay });
      if (p.encapsulated.length === 0) continue;
      fdb.push({ dev, lladdr: p.mac, dst: p.underlay });
      for (const cidr of p.encapsulated) {
        const inner = vtepInner(cidr) as string;
        neighbours.push({ dev, address: inner, lladdr: p.mac });
        routes.push({ dst: cidr, via: inner, dev, onlink: true });
      }
    }
  }
  for (const s of segments) {
    if (!s.member || d.segmentLocal === undefined) continue;
    const ownBridge = s.bridge !== undefined && s.bridge.startsWith(LINK_PREFIX);
    const master = s.bridge !== undefined && (ownBridge || d.bridges.has(s.bridge)) ? s.bridge : undefined;
    const mtu = s.mtu ?? d.segmentMtu;
    if (ownBridge && !links.some((l) => l.name === s.bridge)) links.push({ kind: 'bridge', name: s.bridge, mtu });
    links.push({ kind: 'vxlan', name: s.interface, vni: s.vni, port: d.port, local: d.segmentLocal, learning: false, address: s.mac, mtu, ...(master !== undefined ? { master } : {}) });
    // Addresses on the segment's own bridge when it has one, on the VTEP when it has none; an operator's bridge is theirs.
    const on = ownBridge ? s.bridge : s.bridge === undefined ? s.interface : undefined;
    if (on !== undefined) for (const a of s.addresses) addresses.push({ dev: on, address: a });
    for (const p of s.peers) {
      fdb.push({ dev: s.interface, lladdr: FLOOD_MAC, dst: p.underlay });
      fdb.push({ dev: s.interface, lladdr: p.mac, dst: p.underlay });
    }
  }
  // Pods on one node reach pods on another only through forwarding (as the wireguard plugin sets it).
  const sysctls = overlay ? [{ key: 'net.ipv4.ip_forward', value: '1' }, ...(routes.some((r) => familyOf(r.dst.split('/')[0] as string) === 6) ? [{ key: 'net.ipv6.conf.all.forwarding', value: '1' }] : [])] : [];
  return { links, addresses, routes, neighbours, fdb, sysctls };
}

/** The VXLAN overhead on top of the inner frame: 50 bytes over IPv4, 70 over IPv6. */
export function overhead(underlay: string): number {
  return familyOf(underlay) === 6 ? 70 : 50;
}
