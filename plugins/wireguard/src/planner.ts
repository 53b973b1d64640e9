import {
  canonicalIP,
  canonicalNetwork,
  type ClusterView,
  type DesiredState,
  hostNetwork,
  type Network,
  ipToBigInt,
  networkSize,
  networksOverlap,
  type NodeInfo,
  parseNetwork,
  type Route,
  type WireGuardDeviceStatus,
} from '@weft/core';
import type { ExternalPeer, WireGuardConfig } from './config.js';
import { type Excluded, type NodeFacts, PUBLISHED, readNode, readNodeOnce } from './facts.js';
import { claimKey, winners } from './overlay.js';

/**
 * A handshake is fresh for this long: WireGuard's REJECT_AFTER_TIME. A tunnel that carries traffic (keepalives
 * included) renews its handshake every two minutes, so a live one is never older.
 */
export const HANDSHAKE_FRESH_SECONDS = 180;

/** What the plugin knows of itself that the view may not show yet (it is being published). */
export interface SelfFacts {
  readonly publicKey: string;
  readonly endpoint: string | undefined;
  readonly overlay4: string;
  readonly overlay6: string;
  readonly overlaySince: number;
}

export interface PlanInput {
  readonly view: ClusterView;
  readonly config: WireGuardConfig;
  readonly self: SelfFacts;
  /** The device as it runs (handshakes, roamed endpoints); absent before it exists. */
  readonly observed?: WireGuardDeviceStatus | undefined;
  /** When this node first saw each other node's overlay claim (overlay.ts); a claim not in it counts as seen now. */
  readonly claimsSeen?: ReadonlyMap<string, number>;
  /** Unix seconds. */
  readonly now: number;
}

/** One WireGuard peer of this node. */
export interface PlannedPeer {
  /** A node's name, or an external peer's. */
  readonly name: string;
  readonly kind: 'node' | 'leader' | 'external';
  readonly publicKey: string;
  readonly endpoint: string | undefined;
  /** Where the endpoint came from: as published, as this node last saw the peer (roaming, NAT), as another node saw it. */
  readonly endpointSource: 'published' | 'observed' | 'discovered' | 'config' | 'none';
  readonly allowedIPs: readonly string[];
  readonly persistentKeepalive: number;
  readonly location: string | undefined;
  /** The nodes whose traffic goes through this peer (itself; a leader: its location). */
  readonly carries: readonly string[];
}

/** A pod CIDR a node claims that the mesh does not route to it. */
export interface RefusedCIDR {
  readonly node: string;
  readonly podCIDR: string;
  readonly reason: string;
}

/** A node as the mesh sees it (for status and the graph). */
export interface MeshNode {
  readonly name: string;
  readonly location: string;
  readonly leader: boolean;
  readonly ready: boolean;
  readonly overlay4: string | undefined;
  readonly endpoint: string | undefined;
  readonly publicKey: string;
  /** Its pod CIDRs and overlay addresses (what is routed to it). */
  readonly networks: readonly string[];
}

/** A segment of the mesh (see {@link MeshPlan.segments}). */
export interface MeshSegment {
  /** The members' location (`""`: none). */
  readonly location: string;
  readonly leader: string;
  /** Its nodes' names, sorted. */
  readonly members: readonly string[];
}

/** Everything this node should have, and what it sees of the mesh. Deterministic: sorted everywhere. */
export interface MeshPlan {
  readonly granularity: WireGuardConfig['granularity'];
  readonly self: string;
  readonly location: string;
  readonly isLeader: boolean;
  /** The leader of each location (location mode; `""` is nodes without a location). */
  readonly leaders: Readonly<Record<string, string>>;
  /**
   * The mesh's segments, sorted: nodes that reach each other over the underlay, and the leader that carries their
   * traffic to the other segments' leaders — one per location, or (granularity `full`) every node its own. What the
   * peers, the routes, the graph and the peer configs are made from.
   */
  readonly segments: readonly MeshSegment[];
  readonly peers: readonly PlannedPeer[];
  readonly routes: readonly Route[];
  /** Self's overlay addresses with their prefix, on the interface. */
  readonly addresses: readonly string[];
  /** Nodes and external peers left out, and why. */
  readonly excluded: readonly Excluded[];
  /** Pod CIDRs of nodes in the mesh that it does not route, and why (they would take the mesh's own addresses). */
  readonly refused: readonly RefusedCIDR[];
  readonly nodes: readonly MeshNode[];
  /** External peers in the mesh (by name). */
  readonly externals: readonly string[];
  /** Where this node saw peers' packets come from, when that differs from what they publish (to publish). */
  readonly discovered: Readonly<Record<string, string>>;
  /** A problem with this node's own data (its annotations), when there is one: it then has no peers. */
  readonly selfProblem?: string;
}

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
/** Sorted, each value once (a node's networks: a handful, made for every node of every plan). */
const sorted = (xs: Iterable<string>): string[] => {
  const all = [...xs].sort();
  let kept = 0;
  for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[kept - 1]) all[kept++] = all[i] as string;
  all.length = kept;
  return all;
};

/** How a location's leader is chosen: the operator's preferences, and how far the nodes' ages can be trusted. */
export interface LeaderRules {
  /** Node names preferred as leaders, most preferred first (the config's `leaders`). */
  readonly preferred: readonly string[];
  /** Who dated the nodes (ClusterView.datedBy): ages and the leader label count only when it is the cluster. */
  readonly datedBy: 'cluster' | 'agent';
}

/**
 * Leader order, the same on every node and chosen by no node: the config's `leaders` first (in its order), then
 * nodes with the `node-restriction.kubernetes.io/weft-leader` label (which no kubelet can set on itself), then — where the API server dates
 * the nodes — the older node, then the name. Nothing a node publishes about itself (an address, an annotation) buys
 * it a place.
 */
export function leaderOrder(rules: Pick<LeaderRules, 'preferred' | 'datedBy'>): (a: NodeFacts, b: NodeFacts) => number {
  const rank = new Map(rules.preferred.map((name, i) => [name, i]));
  const cluster = rules.datedBy === 'cluster';
  return (a, b) => {
    const ra = rank.get(a.name) ?? Number.POSITIVE_INFINITY;
    const rb = rank.get(b.name) ?? Number.POSITIVE_INFINITY;
    if (ra !== rb) return ra < rb ? -1 : 1;
    if (cluster && a.leaderLabel !== b.leaderLabel) return a.leaderLabel ? -1 : 1;
    if (cluster && a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  };
}

/**
 * The leader of one location: the first by {@link leaderOrder} among its Ready nodes; when none is Ready, the first
 * of all. Ready is the cluster's own judgement (in Kubernetes the node lifecycle controller marks a node NotReady when
 * its kubelet stops renewing its Lease), the same for every agent: the nodes of a location, and the leaders of the
 * others, agree on it without anything published for it. Nothing periodic goes through the API server.
 */
export function electLeader(members: readonly NodeFacts[], rules: LeaderRules): NodeFacts | undefined {
  const order = leaderOrder(rules);
  const first = (list: readonly NodeFacts[]) => [...list].sort(order)[0];
  return first(members.filter((n) => n.ready)) ?? first(members);
}

/** Addresses sorted by value per family: which of them lies in a network, found in log time. */
function addressIndex(ips: readonly string[]): (net: Network) => string | undefined {
  const byFamily = new Map<number, { value: bigint; ip: string }[]>();
  for (const ip of ips) {
    const v = ipToBigInt(ip);
    if (!v) continue;
    const list = byFamily.get(v.family);
    if (list) list.push({ value: v.value, ip });
    else byFamily.set(v.family, [{ value: v.value, ip }]);
  }
  for (const list of byFamily.values()) list.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  return (net) => {
    const list = byFamily.get(net.family);
    if (!list) return undefined;
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((list[mid] as { value: bigint }).value < net.base) lo = mid + 1;
      else hi = mid;
    }
    const hit = list[lo];
    return hit && hit.value < net.base + networkSize(net) ? hit.ip : undefined;
  };
}

/** The annotations self will carry once its publish lands: so that self reasons on what the others will see. */
function selfNode(view: ClusterView, self: SelfFacts): NodeInfo {
  const annotations: Record<string, string> = { ...view.self.annotations, [PUBLISHED.publicKey]: self.publicKey, [PUBLISHED.overlay]: `${self.overlay4},${self.overlay6}`, [PUBLISHED.overlaySince]: String(self.overlaySince) };
  if (self.endpoint) annotations[PUBLISHED.endpoint] = self.endpoint;
  return { ...view.self, annotations };
}

/** The mesh for this node: a pure function of the view, the config, what it knows of itself and what its device saw. */
export function planMesh(input: PlanInput): MeshPlan {
  return plan(input, { nowRead: false });
}

/**
 * What a plan reads besides the view and the config (those two are compared by identity): this node's facts, the
 * claims it noted, and of each observed peer only its key, its endpoint and whether its handshake is fresh at `now`.
 * Keep in step with {@link plan}: anything it comes to read of its input belongs here.
 */
function planKey(input: PlanInput): string {
  const { self, observed, claimsSeen, now } = input;
  const peers = (observed?.peers ?? []).map((p) => `${p.publicKey} ${p.endpoint ?? ''} ${p.latestHandshake > 0 && now - p.latestHandshake <= HANDSHAKE_FRESH_SECONDS ? 'fresh' : ''}`);
  return JSON.stringify([self, peers, claimsSeen ? [...claimsSeen] : null]);
}

/**
 * {@link planMesh} that hands back its last plan, the very object, while nothing the plan reads has changed: a
 * heartbeat of a quiet mesh plans nothing. `now` counts only where the last plan read it (a claim not yet noted).
 */
export function createPlanner(): (input: PlanInput) => MeshPlan {
  let last: { view: ClusterView; config: WireGuardConfig; key: string; now: number; nowRead: boolean; plan: MeshPlan } | undefined;
  return (input) => {
    const key = planKey(input);
    if (last && last.view === input.view && last.config === input.config && last.key === key && (!last.nowRead || last.now === input.now)) return last.plan;
    const trace = { nowRead: false };
    const made = plan(input, trace);
    last = { view: input.view, config: input.config, key, now: input.now, nowRead: trace.nowRead, plan: made };
    return made;
  };
}

function plan(input: PlanInput, trace: { nowRead: boolean }): MeshPlan {
  const { view, config, self, now } = input;
  const excluded: Excluded[] = [];
  const me = readNode(selfNode(view, self), config);
  const others: NodeFacts[] = [];
  for (const n of view.nodes) {
    if (n.name === view.self.name) continue;
    const f = readNodeOnce(n, config);
    if ('kind' in f) excluded.push(f);
    else others.push(f);
  }
  const base = { granularity: config.granularity, self: view.self.name, location: view.self.location ?? '', peers: [], routes: [], discovered: {}, externals: [] };
  if ('kind' in me) {
    return { ...base, isLeader: false, leaders: {}, segments: [], addresses: [], excluded, refused: [], nodes: [], selfProblem: me.reason };
  }

  // A key two nodes publish: the older node keeps it, equally old ones neither (never the name that sorts first).
  // This node keeps its own key in its own mesh. Pod CIDRs that overlap were settled by the core, by age.
  const valid: NodeFacts[] = [me];
  const holdersOf = new Map<string, NodeFacts[]>();
  for (const n of others) {
    if (n.publicKey === me.publicKey) excluded.push({ node: n.name, kind: 'invalid', reason: `${PUBLISHED.publicKey} is also ${me.name}'s (this node's own)` });
    else {
      const holders = holdersOf.get(n.publicKey);
      if (holders) holders.push(n);
      else holdersOf.set(n.publicKey, [n]);
    }
  }
  for (const holders of holdersOf.values()) {
    const oldest = Math.min(...holders.map((n) => n.createdAt));
    const first = holders.filter((n) => n.createdAt === oldest);
    for (const n of holders) {
      if (holders.length === 1 || (first.length === 1 && n === first[0])) valid.push(n);
      else if (n.createdAt === oldest) {
        const twins = first.filter((h) => h !== n).map((h) => h.name).join(', ');
        excluded.push({ node: n.name, kind: 'invalid', reason: `${PUBLISHED.publicKey} is also ${twins}'s, and the cluster knew them at the same time: neither is a peer` });
      } else excluded.push({ node: n.name, kind: 'invalid', reason: `${PUBLISHED.publicKey} is also ${first.map((h) => h.name).join(', ')}'s, which the cluster knew first` });
    }
  }
  const keys = new Map<string, string>(valid.map((n) => [n.publicKey, n.name]));
  valid.sort(byName);

  // External peers (the operator's config): checked against the overlay ranges, each other and the nodes' keys.
  const overlayRanges = [parseNetwork(config.overlayCIDR) as Network, parseNetwork(config.overlayCIDR6) as Network];
  const taken = [...overlayRanges];
  const externals: ExternalPeer[] = [];
  for (const p of [...config.peers].sort(byName)) {
    const nets = p.allowedIPs.map((c) => parseNetwork(c) as Network);
    const clash = nets.find((x) => taken.some((c) => networksOverlap(x, c)));
    if (keys.has(p.publicKey)) excluded.push({ node: `external:${p.name}`, kind: 'invalid', reason: `its public key is also ${keys.get(p.publicKey) ?? ''}'s` });
    else if (clash) excluded.push({ node: `external:${p.name}`, kind: 'invalid', reason: `allowed IP ${canonicalNetwork(p.allowedIPs[nets.indexOf(clash)] as string) ?? ''} overlaps the overlay ranges or another external peer` });
    else {
      externals.push(p);
      keys.set(p.publicKey, `external:${p.name}`);
      taken.push(...nets);
    }
  }

  const observed = new Map((input.observed?.peers ?? []).map((p) => [p.publicKey, p]));
  // Pod CIDRs the mesh must not route to a node: the overlay ranges (every node's overlay address), an external
  // peer's allowed IPs, or a WireGuard endpoint (routed into the tunnel, it would cut the tunnel itself).
  const endpointIPs = [
    ...valid.map((n) => n.endpoint),
    ...valid.flatMap((n) => Object.values(n.discovered)),
    ...externals.map((p) => p.endpoint),
    ...[...observed.values()].map((o) => o.endpoint),
  ].flatMap((e) => {
    const host = e?.startsWith('[') ? e.slice(1, e.indexOf(']')) : e?.slice(0, e.lastIndexOf(':'));
    const ip = host === undefined ? undefined : canonicalIP(host);
    return ip === undefined ? [] : [ip];
  });
  // Parsed once: every node's pod CIDRs are checked against every endpoint (5,000 nodes: 25 million pairs otherwise).
  const endpointIn = addressIndex(endpointIPs);
  const externalNets = externals.map((peer) => ({ peer, nets: peer.allowedIPs.map((a) => parseNetwork(a) as Network) }));
  const refused: RefusedCIDR[] = [];
  const routable = new Map<string, string[]>();
  for (const n of valid) {
    const ok: string[] = [];
    for (const c of n.podCIDRs) {
      const net = parseNetwork(c) as Network;
      const external = externalNets.find((x) => x.nets.some((a) => networksOverlap(a, net)))?.peer;
      const endpoint = endpointIn(net);
      const reason = overlayRanges.some((r) => networksOverlap(r, net))
        ? `overlaps the overlay range ${net.family === 4 ? config.overlayCIDR : config.overlayCIDR6}`
        : external
          ? `overlaps external peer ${external.name}'s allowed IPs`
          : endpoint !== undefined
            ? `holds the WireGuard endpoint ${endpoint}`
            : undefined;
      if (reason) refused.push({ node: n.name, podCIDR: c, reason });
      else ok.push(c);
    }
    routable.set(n.name, ok);
  }

  // Overlay addresses: a contested one counts only for the node that keeps it (overlay.ts).
  const seenAt = (n: NodeFacts) => {
    if (n.name === me.name) return self.overlaySince;
    const seen = input.claimsSeen?.get(claimKey(n.name, n.overlay4 as string));
    if (seen !== undefined) return seen;
    trace.nowRead = true;
    return now;
  };
  const keeper = winners(valid.filter((n) => n.overlay4 !== undefined).map((n) => ({ node: n.name, ip4: n.overlay4 as string, since: seenAt(n) })));
  const overlayNets = (n: NodeFacts) => (n.overlay4 !== undefined && keeper.get(n.overlay4) === n.name ? n.overlayHosts : []);
  // A node's networks (its routable pod CIDRs and overlay addresses), sorted: made once per plan, shared by its peer
  // entry and its row in `nodes` (5,000 nodes: ~15 ms a plan when made twice).
  const networksMade = new Map<string, readonly string[]>();
  const networksOf = (n: NodeFacts): readonly string[] => {
    let nets = networksMade.get(n.name);
    if (nets === undefined) {
      nets = sorted([...(routable.get(n.name) ?? []), ...overlayNets(n)]);
      networksMade.set(n.name, nets);
    }
    return nets;
  };

  const freshHandshake = (key: string) => {
    const o = observed.get(key);
    return o !== undefined && o.latestHandshake > 0 && now - o.latestHandshake <= HANDSHAKE_FRESH_SECONDS;
  };
  const keepalive = me.keepalive || config.persistentKeepalive;
  // What other nodes saw of each key, for peers behind NAT: the report of the oldest node that saw it (nodes as old
  // as each other count only when they agree), never of the node itself, and never by name.
  const reports = new Map<string, { by: NodeFacts; endpoint: string }[]>();
  for (const x of valid) {
    if (x.name === me.name) continue;
    for (const [key, endpoint] of Object.entries(x.discovered)) if (keys.get(key) !== x.name) reports.set(key, [...(reports.get(key) ?? []), { by: x, endpoint }]);
  }
  const discoveredBy = new Map<string, string>();
  for (const [key, list] of reports) {
    const oldest = Math.min(...list.map((r) => r.by.createdAt));
    const agreed = new Set(list.filter((r) => r.by.createdAt === oldest).map((r) => r.endpoint));
    if (agreed.size === 1) discoveredBy.set(key, [...agreed][0] as string);
  }

  /** Where to send a node's packets: what works now, else what another node saw of it behind NAT, else what it publishes. */
  const endpointFor = (n: NodeFacts): Pick<PlannedPeer, 'endpoint' | 'endpointSource'> => {
    const o = observed.get(n.publicKey);
    if (o?.endpoint && freshHandshake(n.publicKey)) return { endpoint: o.endpoint, endpointSource: o.endpoint === n.endpoint ? 'published' : 'observed' };
    if (n.keepalive > 0 && n.location !== me.location) {
      const seen = discoveredBy.get(n.publicKey);
      if (seen) return { endpoint: seen, endpointSource: 'discovered' };
    }
    return { endpoint: n.endpoint, endpointSource: n.endpoint ? 'published' : 'none' };
  };

  const byKey = new Map(valid.map((n) => [n.publicKey, n]));
  const externalPeer = (p: ExternalPeer): PlannedPeer => {
    const o = observed.get(p.publicKey);
    const live = o?.endpoint && freshHandshake(p.publicKey) ? o.endpoint : undefined;
    return {
      name: p.name,
      kind: 'external',
      publicKey: p.publicKey,
      endpoint: live ?? p.endpoint,
      endpointSource: live ? (live === p.endpoint ? 'config' : 'observed') : p.endpoint ? 'config' : 'none',
      allowedIPs: sorted(p.allowedIPs.map((c) => canonicalNetwork(c) as string)),
      persistentKeepalive: p.persistentKeepalive || keepalive,
      location: undefined,
      carries: [],
    };
  };

  const dev = config.interface;
  const peers: PlannedPeer[] = [];
  const routes: Route[] = [];
  const viaDevice = (nets: readonly string[]) => nets.map((dst) => ({ dst, dev }));
  /** Routes to `nets` through a node on the underlay (same family only). */
  const viaUnderlay = (nets: readonly string[], gw: NodeFacts) =>
    nets.flatMap((dst) => {
      const v6 = dst.includes(':'); // a canonical network's address: IPv6 exactly when it has a colon
      const via = v6 ? gw.internal6 : gw.internal4;
      return via ? [{ dst, via }] : [];
    });
  // One model for both granularities (Kilo's): a segment is nodes that reach each other over the underlay, and its
  // leader carries their traffic to the other segments' leaders. `full` is every node its own segment.
  const full = config.granularity === 'full';
  const rules: LeaderRules = { preferred: config.leaders, datedBy: view.datedBy };
  type Segment = { readonly key: string; readonly location: string; readonly leader: NodeFacts; readonly members: readonly NodeFacts[] };
  let segments: Segment[];
  if (full) segments = valid.map((n) => ({ key: n.name, location: n.location, leader: n, members: [n] }));
  else {
    const groups = new Map<string, NodeFacts[]>();
    for (const n of valid) {
      const members = groups.get(n.location);
      if (members) members.push(n);
      else groups.set(n.location, [n]);
    }
    segments = [...groups].map(([key, members]) => ({ key, location: key, leader: electLeader(members, rules) as NodeFacts, members }));
  }
  segments.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const leaders: Record<string, string> = {};
  if (!full) for (const seg of segments) leaders[seg.key] = seg.leader.name;
  const mine = segments.find((seg) => seg.key === (full ? me.name : me.location)) as Segment;
  const carrying = mine.leader.name === me.name;
  const isLeader = !full && carrying;

  // Inside the segment: straight over the underlay (a full mesh's segments have no one else).
  for (const m of mine.members) if (m.name !== me.name) routes.push(...viaUnderlay(networksOf(m), m));
  for (const seg of segments) {
    if (seg === mine) continue;
    const nets = seg.members.length === 1 ? networksOf(seg.leader) : sorted(seg.members.flatMap(networksOf));
    if (carrying) {
      const l = seg.leader;
      const carries = seg.members.length === 1 ? [l.name] : seg.members.map((m) => m.name).sort();
      peers.push({ name: l.name, kind: full ? 'node' : 'leader', publicKey: l.publicKey, ...endpointFor(l), allowedIPs: nets, persistentKeepalive: keepalive, location: seg.location || undefined, carries });
      routes.push(...viaDevice(nets));
    } else routes.push(...viaUnderlay(nets, mine.leader));
  }
  for (const p of externals) {
    const nets = p.allowedIPs.map((c) => canonicalNetwork(c) as string);
    if (carrying) {
      peers.push(externalPeer(p));
      routes.push(...viaDevice(nets));
    } else routes.push(...viaUnderlay(nets, mine.leader));
  }

  // What this node saw of its peers that differs from what they publish: others behind NAT can use it.
  const discovered: Record<string, string> = {};
  for (const p of peers) {
    const o = observed.get(p.publicKey);
    const published = byKey.get(p.publicKey)?.endpoint;
    if (p.kind !== 'external' && o?.endpoint && freshHandshake(p.publicKey) && o.endpoint !== published) discovered[p.publicKey] = o.endpoint;
  }

  const nodes: MeshNode[] = valid.map((n) => ({
    name: n.name,
    location: n.location,
    leader: !full && leaders[n.location] === n.name,
    ready: n.ready,
    overlay4: n.overlay4,
    endpoint: n.endpoint,
    publicKey: n.publicKey,
    networks: networksOf(n),
  }));
  return {
    ...base,
    location: me.location,
    isLeader,
    leaders,
    segments: segments.map((seg) => ({ location: seg.location, leader: seg.leader.name, members: seg.members.length === 1 ? [seg.leader.name] : seg.members.map((m) => m.name).sort() })),
    peers: peers.sort(byName),
    routes: routes.sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0)),
    addresses: [hostNetwork(self.overlay4), hostNetwork(self.overlay6)],
    excluded: excluded.sort((a, b) => (a.node < b.node ? -1 : 1)),
    refused: refused.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : a.podCIDR < b.podCIDR ? -1 : 1)),
    nodes,
    externals: externals.map((p) => p.name),
    discovered: Object.fromEntries(Object.entries(discovered).sort(([a], [b]) => (a < b ? -1 : 1))),
  };
}

/** The kernel state for a plan: the interface, its overlay addresses, the routes, the device and its peers. */
export function desiredState(plan: MeshPlan, config: WireGuardConfig, privateKey: string, mtu: number): DesiredState {
  const ipv6 = plan.routes.some((r) => r.dst.includes(':'));
  return {
    links: [{ kind: 'wireguard', name: config.interface, mtu }],
    addresses: plan.addresses.map((address) => ({ dev: config.interface, address })),
    routes: plan.routes,
    wireguard: [
      {
        name: config.interface,
        privateKey,
        listenPort: config.port,
        peers: plan.peers.map((p) => ({
          publicKey: p.publicKey,
          allowedIPs: p.allowedIPs,
          ...(p.endpoint ? { endpoint: p.endpoint } : {}),
          ...(p.persistentKeepalive > 0 ? { persistentKeepalive: p.persistentKeepalive } : {}),
        })),
      },
    ],
    // Nodes forward pod traffic (and a leader its location's).
    sysctls: [{ key: 'net.ipv4.ip_forward', value: '1' }, ...(ipv6 ? [{ key: 'net.ipv6.conf.all.forwarding', value: '1' }] : [])],
  };
}
