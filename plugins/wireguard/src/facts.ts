import { canonicalEndpoint, canonicalIP, canonicalNetwork, familyOf, hostNetwork, isWireGuardKey, joinHostPort, networkContains, type NodeInfo, parseNetwork } from '@weft/core';
import type { WireGuardConfig } from './config.js';

/** The annotations this plugin publishes on its own node (and reads from the others). */
export const PUBLISHED = {
  publicKey: 'weft.io/wireguard-public-key',
  endpoint: 'weft.io/wireguard-endpoint',
  /** The overlay addresses, IPv4 then IPv6: `100.64.12.34,fd77:6566:7400::c:1222`. */
  overlay: 'weft.io/wireguard-ip',
  /** When the node claimed its overlay address (unix seconds): the earlier claim keeps a contested address. */
  overlaySince: 'weft.io/wireguard-ip-since',
  /** JSON `{ "<public key>": "ip:port" }`: where this node saw its peers' packets come from (behind NAT). */
  discovered: 'weft.io/wireguard-discovered-endpoints',
  /** No longer published (a location's leader is chosen by Ready): removed where an older version left it. */
  lastSeen: 'weft.io/wireguard-last-seen',
} as const;

/** Annotations an operator sets on a node. */
export const OPERATOR = {
  forceEndpoint: 'weft.io/force-endpoint',
  persistentKeepalive: 'weft.io/persistent-keepalive',
} as const;

/**
 * The label that prefers a node as its location's leader. Under `node-restriction.kubernetes.io/`, so a kubelet
 * cannot set it on its own node (the NodeRestriction admission plugin); only honoured where the API server dates the
 * nodes, since in the `directory` source a node writes its labels itself.
 */
export const LEADER_LABEL = 'node-restriction.kubernetes.io/weft-leader';

/** The annotation that once preferred a leader: any node could set it on itself, so it is ignored (and said so). */
export const IGNORED_LEADER_ANNOTATION = 'weft.io/leader';

/**
 * The longest `weft.io/wireguard-discovered-endpoints` read (about 700 peers' endpoints): it is parsed on every
 * reconcile of every agent, so a node cannot make every agent parse a quarter of a megabyte each time.
 */
export const MAX_DISCOVERED_BYTES = 64 * 1024;

/** What the mesh needs of one node, read from the view and checked. */
export interface NodeFacts {
  readonly name: string;
  /** When the cluster first knew the node (ms; NodeInfo.createdAt): the older of two claims keeps what both claim. */
  readonly createdAt: number;
  readonly location: string;
  readonly ready: boolean;
  readonly publicKey: string;
  /** Where to reach its WireGuard, as published. */
  readonly endpoint: string | undefined;
  readonly overlay4: string | undefined;
  readonly overlay6: string | undefined;
  /** The overlay addresses as host networks (`/32`, `/128`), what the mesh routes to the node; none without an IPv4 one. */
  readonly overlayHosts: readonly string[];
  readonly podCIDRs: readonly string[];
  /** First internal IPv4 and IPv6 addresses (the underlay inside a location). */
  readonly internal4: string | undefined;
  readonly internal6: string | undefined;
  /** The operator's leader label ({@link LEADER_LABEL}) is on the node. */
  readonly leaderLabel: boolean;
  /** Seconds; 0 off. What the node asks for (it sits behind NAT). */
  readonly keepalive: number;
  /** Endpoints this node observed, by the peer's public key. */
  readonly discovered: Readonly<Record<string, string>>;
}

/** A node the mesh leaves out, and why: `pending` until it publishes, `invalid` for bad data (logged, counted). */
export type Excluded = { readonly node: string; readonly kind: 'pending' | 'invalid'; readonly reason: string };

/** The location a node is in for the mesh: its location, or `""` for nodes without one. */
export const locationKey = (n: NodeInfo): string => n.location ?? '';

/**
 * A node's published overlay addresses (the first inside each range) and when it claimed them (`since`: unix
 * seconds, undefined when not published or unreadable), with what is wrong with them.
 */
export function readOverlay(
  annotations: Readonly<Record<string, string>>,
  config: Pick<WireGuardConfig, 'overlayCIDR' | 'overlayCIDR6'>,
): { overlay4: string | undefined; overlay6: string | undefined; since: number | undefined; problems: string[] } {
  const problems: string[] = [];
  let overlay4: string | undefined;
  let overlay6: string | undefined;
  const ov = annotations[PUBLISHED.overlay];
  if (ov !== undefined && ov !== '') {
    const v4 = parseNetwork(config.overlayCIDR);
    const v6 = parseNetwork(config.overlayCIDR6);
    for (const part of ov.split(',')) {
      const ip = canonicalIP(part.trim());
      if (ip !== undefined && v4 && networkContains(v4, ip) && overlay4 === undefined) overlay4 = ip;
      else if (ip !== undefined && v6 && networkContains(v6, ip) && overlay6 === undefined) overlay6 = ip;
      else problems.push(`${PUBLISHED.overlay}: ${JSON.stringify(part.slice(0, 60))} is not an address of ${config.overlayCIDR} or ${config.overlayCIDR6}`);
    }
  }
  const sinceText = annotations[PUBLISHED.overlaySince];
  const valid = sinceText !== undefined && /^\d{1,12}$/.test(sinceText);
  if (sinceText !== undefined && !valid) problems.push(`${PUBLISHED.overlaySince}: expected unix seconds, got ${JSON.stringify(sinceText.slice(0, 60))}`);
  return { overlay4, overlay6, since: valid ? Number(sinceText) : undefined, problems };
}

/**
 * Reads and checks one node's WireGuard facts. A node that has not published a key yet is `pending`; one whose
 * annotations hold a bad value is `invalid`, with every problem named, and the mesh leaves it out.
 */
export function readNode(n: NodeInfo, config: Pick<WireGuardConfig, 'overlayCIDR' | 'overlayCIDR6'>): NodeFacts | Excluded {
  const a = n.annotations;
  const problems: string[] = [];
  const key = a[PUBLISHED.publicKey];
  if (key === undefined || key === '') return { node: n.name, kind: 'pending', reason: 'no WireGuard public key published yet' };
  if (!isWireGuardKey(key)) problems.push(`${PUBLISHED.publicKey}: expected a base64 WireGuard key, got ${JSON.stringify(String(key).slice(0, 60))}`);

  let endpoint: string | undefined;
  const ep = a[PUBLISHED.endpoint];
  if (ep !== undefined && ep !== '') {
    endpoint = canonicalEndpoint(ep);
    if (!endpoint) problems.push(`${PUBLISHED.endpoint}: expected ip:port or [ipv6]:port, got ${JSON.stringify(ep.slice(0, 60))}`);
  }

  const overlay = readOverlay(a, config);
  problems.push(...overlay.problems);
  const { overlay4, overlay6 } = overlay;

  const podCIDRs: string[] = [];
  for (const c of n.podCIDRs) {
    const canonical = canonicalNetwork(c);
    if (canonical) podCIDRs.push(canonical);
    else problems.push(`pod CIDR ${JSON.stringify(c)}: not a CIDR`);
  }

  const keepaliveText = a[OPERATOR.persistentKeepalive];
  let keepalive = 0;
  if (keepaliveText !== undefined) {
    keepalive = Number(keepaliveText);
    if (!/^\d{1,5}$/.test(keepaliveText) || keepalive > 65535) problems.push(`${OPERATOR.persistentKeepalive}: expected seconds 0-65535, got ${JSON.stringify(keepaliveText.slice(0, 60))}`);
  }
  const discovered: Record<string, string> = {};
  const discText = a[PUBLISHED.discovered];
  if (discText !== undefined && discText.length > MAX_DISCOVERED_BYTES) {
    problems.push(`${PUBLISHED.discovered}: ${String(discText.length)} characters, more than ${String(MAX_DISCOVERED_BYTES)}`);
  } else if (discText !== undefined && discText !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(discText);
    } catch {
      parsed = undefined;
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) problems.push(`${PUBLISHED.discovered}: expected a JSON object of public key to ip:port`);
    else {
      for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
        const e = typeof v === 'string' ? canonicalEndpoint(v) : undefined;
        if (!isWireGuardKey(k) || !e) problems.push(`${PUBLISHED.discovered}: bad entry ${JSON.stringify(k.slice(0, 60))}: ${JSON.stringify(v)}`);
        else discovered[k] = e;
      }
    }
  }
  if (problems.length > 0) return { node: n.name, kind: 'invalid', reason: problems.join('; ') };

  const first = (list: readonly string[], family: 4 | 6) => list.map((x) => canonicalIP(x)).find((x) => x !== undefined && familyOf(x) === family);
  return {
    name: n.name,
    createdAt: n.createdAt,
    location: locationKey(n),
    ready: n.ready,
    publicKey: key,
    endpoint,
    overlay4,
    overlay6,
    overlayHosts: overlay4 !== undefined ? [hostNetwork(overlay4), ...(overlay6 !== undefined ? [hostNetwork(overlay6)] : [])] : [],
    podCIDRs,
    internal4: first(n.internalAddresses, 4),
    internal6: first(n.internalAddresses, 6),
    leaderLabel: ['true', '1', 'yes'].includes((n.labels[LEADER_LABEL] ?? '').toLowerCase()),
    keepalive,
    discovered,
  };
}

const remembered = new WeakMap<NodeInfo, { config: object; facts: NodeFacts | Excluded }>();

/**
 * {@link readNode}, remembered per node object and config object. The core hands an unchanged node over as the same
 * object from view to view, so a steady mesh reads and checks each node once, not once per reconcile (5,000 nodes:
 * the larger part of a plan). A changed node is a new object, read afresh.
 */
export function readNodeOnce(n: NodeInfo, config: Pick<WireGuardConfig, 'overlayCIDR' | 'overlayCIDR6'>): NodeFacts | Excluded {
  const kept = remembered.get(n);
  if (kept !== undefined && kept.config === config) return kept.facts;
  const facts = readNode(n, config);
  remembered.set(n, { config, facts });
  return facts;
}

/**
 * The endpoint a node publishes: `weft.io/force-endpoint` when set (and valid), else an external address, else an
 * internal one (IPv4 before IPv6), with the listen port. `problem` says why a forced endpoint was ignored.
 */
export function ownEndpoint(n: NodeInfo, port: number): { endpoint: string | undefined; problem?: string } {
  const forced = n.annotations[OPERATOR.forceEndpoint];
  let problem: string | undefined;
  if (forced !== undefined && forced !== '') {
    const e = canonicalEndpoint(forced) ?? (canonicalIP(forced) !== undefined ? canonicalEndpoint(joinHostPort(canonicalIP(forced) as string, port)) : undefined);
    if (e) return { endpoint: e };
    problem = `${OPERATOR.forceEndpoint}: expected ip, ip:port or [ipv6]:port, got ${JSON.stringify(forced.slice(0, 60))}; ignored`;
  }
  const pick = (list: readonly string[]) => {
    const ips = list.map((x) => canonicalIP(x)).filter((x): x is string => x !== undefined);
    return ips.find((x) => familyOf(x) === 4) ?? ips.find((x) => familyOf(x) === 6);
  };
  const host = pick(n.externalAddresses) ?? pick(n.internalAddresses);
  return { endpoint: host === undefined ? undefined : joinHostPort(host, port), ...(problem ? { problem } : {}) };
}
