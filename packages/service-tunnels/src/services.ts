import { canonicalIP, type ClusterView, familyOf, type Family, networkContains, parseNetwork, type ServiceInfo } from '@weft/core';

/** `weft.io/tunnel: <VIP>[,<VIP>…]` on a Service: deliver these external addresses into its endpoint pods. */
export const TUNNEL_ANNOTATION = 'weft.io/tunnel';
/** `weft.io/tunnel-affinity: flow | client`: hash the whole flow (default), or the client's address alone. */
export const AFFINITY_ANNOTATION = 'weft.io/tunnel-affinity';
/** `weft.io/tunnel-drain: <pod IP>[,…]`: endpoints the operator drains (no new flows; open ones finish). */
export const DRAIN_ANNOTATION = 'weft.io/tunnel-drain';

/**
 * `weft.io/tunnel-encap: gre | mpls`: which tunnel plugin delivers the Service. Absent: the plugin whose config
 * serves unmarked Services (gre-tunnel by default; mpls-lwtunnel when told so).
 */
export const ENCAP_ANNOTATION = 'weft.io/tunnel-encap';
/** The encapsulations a Service may ask for. */
export const ENCAPS = ['gre', 'mpls'] as const;
export type Encap = (typeof ENCAPS)[number];

/** The most VIPs one Service may ask for, and the longest annotation read. */
export const LIMITS = { vipsPerService: 16, annotationBytes: 1024, endpointsPerService: 4096 } as const;

/** How a tunnelled flow is hashed to a bucket. */
export type Affinity = 'flow' | 'client';

/** One endpoint of a tunnelled Service. `draining`: it takes no new flows; the flows it has finish (or time out). */
export interface TunnelEndpoint {
  readonly address: string;
  readonly family: Family;
  readonly nodeName: string | undefined;
  readonly state: 'active' | 'draining';
}

/** A Service whose VIPs are delivered into its pods, as checked. */
export interface TunnelService {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string | undefined;
  readonly vips: readonly string[];
  readonly affinity: Affinity;
  /** What its `weft.io/tunnel-encap` asks for; undefined when it has none. */
  readonly encap?: Encap | undefined;
  /** Every endpoint that is active or draining, sorted by address (the order every ingress node agrees on). */
  readonly endpoints: readonly TunnelEndpoint[];
  /** Endpoints left out, and why (an address in no node's pod CIDR, or in another node's than it says). */
  readonly ignored: readonly string[];
}

/** A Service refused, and why: it gets no tunnel, and every other Service is unharmed. */
export interface RefusedService {
  readonly namespace: string;
  readonly name: string;
  readonly reason: string;
}

const id = (s: Pick<ServiceInfo, 'namespace' | 'name'>) => `${s.namespace}/${s.name}`;

/**
 * The Services annotated for a tunnel, with their VIPs and endpoints checked. A VIP is hostile until checked: it
 * must be an address, and no node's address, no pod's, none inside the cluster's pod or service networks (the
 * declared plan, every node's pod CIDR) — a Service must never capture a node's or a pod's traffic. A VIP two Services
 * ask for goes to the older one (by the cluster's clock), and to neither when their ages are unknown or equal: never
 * to the name that sorts first. A refused Service is reported, and the others are planned as if it were not there.
 */
export function tunnelServices(
  view: Pick<ClusterView, 'nodes' | 'services' | 'endpointSlices' | 'addressPlan'>,
  /**
   * Only the Services this plugin delivers: those whose `weft.io/tunnel-encap` is `encap`, and the unmarked ones when
   * `unmarked` is true. Absent: every tunnelled Service. VIP conflicts are decided over all of them, whichever plugin
   * serves each: every plugin refuses the same Services.
   */
  serve?: { readonly encap: Encap; readonly unmarked: boolean },
): { services: TunnelService[]; refused: RefusedService[] } {
  const refused: RefusedService[] = [];
  const nodeAddresses = new Map<string, string>();
  for (const n of view.nodes) for (const a of [...n.internalAddresses, ...n.externalAddresses]) nodeAddresses.set(canonicalIP(a) ?? a, n.name);
  const podAddresses = new Set<string>();
  for (const s of view.endpointSlices ?? []) for (const e of s.endpoints) for (const a of e.addresses) podAddresses.add(canonicalIP(a) ?? a);
  const networks = [
    ...view.addressPlan.podNetworks.map((n) => ({ text: n, what: 'the pod network' })),
    ...view.nodes.flatMap((n) => n.podCIDRs.map((c) => ({ text: c, what: `${n.name}'s pod CIDR` }))),
    ...view.addressPlan.serviceNetworks.map((n) => ({ text: n, what: 'the service network' })),
  ].flatMap((n) => {
    const net = parseNetwork(n.text);
    return net ? [{ ...n, net }] : [];
  });

  const podCidrs = view.nodes.flatMap((n) => n.podCIDRs.flatMap((c) => {
    const net = parseNetwork(c);
    return net ? [{ node: n.name, net }] : [];
  }));

  const candidates: { service: ServiceInfo; vips: string[]; affinity: Affinity; encap: Encap | undefined; drained: Set<string> }[] = [];
  for (const s of view.services ?? []) {
    const text = s.annotations[TUNNEL_ANNOTATION];
    if (text === undefined) continue;
    const refuse = (reason: string) => refused.push({ namespace: s.namespace, name: s.name, reason });
    if (text.length > LIMITS.annotationBytes) {
      refuse(`${TUNNEL_ANNOTATION}: ${String(text.length)} characters, more than ${String(LIMITS.annotationBytes)}`);
      continue;
    }
    const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
    if (parts.length === 0) {
      refuse(`${TUNNEL_ANNOTATION}: no VIP in ${JSON.stringify(text.slice(0, 60))}`);
      continue;
    }
    if (parts.length > LIMITS.vipsPerService) {
      refuse(`${TUNNEL_ANNOTATION}: ${String(parts.length)} VIPs, more than ${String(LIMITS.vipsPerService)}`);
      continue;
    }
    const problems: string[] = [];
    const vips: string[] = [];
    for (const p of parts) {
      const ip = canonicalIP(p);
      if (ip === undefined || p.includes('/')) {
        problems.push(`${JSON.stringify(p.slice(0, 60))} is not an IP address`);
        continue;
      }
      const node = nodeAddresses.get(ip);
      if (node !== undefined) problems.push(`${ip} is node ${node}'s address`);
      else if (podAddresses.has(ip)) problems.push(`${ip} is a pod's address`);
      else {
        const inside = networks.find((n) => networkContains(n.net, ip));
        if (inside) problems.push(`${ip} lies in ${inside.what} ${inside.text}`);
        else if (!vips.includes(ip)) vips.push(ip);
      }
    }
    if (problems.length > 0) {
      refuse(`${TUNNEL_ANNOTATION}: ${problems.join('; ')}`);
      continue;
    }
    const affinityText = s.annotations[AFFINITY_ANNOTATION] ?? 'flow';
    if (affinityText !== 'flow' && affinityText !== 'client') {
      refuse(`${AFFINITY_ANNOTATION}: expected flow or client, got ${JSON.stringify(affinityText.slice(0, 60))}`);
      continue;
    }
    const encapText = s.annotations[ENCAP_ANNOTATION];
    if (encapText !== undefined && !(ENCAPS as readonly string[]).includes(encapText)) {
      refuse(`${ENCAP_ANNOTATION}: expected ${ENCAPS.join(' or ')}, got ${JSON.stringify(encapText.slice(0, 60))}`);
      continue;
    }
    const drained = new Set<string>();
    const drainText = s.annotations[DRAIN_ANNOTATION];
    if (drainText !== undefined && drainText.trim() !== '') {
      const bad = drainText.split(',').map((p) => p.trim()).filter((p) => {
        const ip = canonicalIP(p);
        if (ip !== undefined) drained.add(ip);
        return ip === undefined;
      });
      if (drainText.length > LIMITS.annotationBytes || bad.length > 0) {
        refuse(`${DRAIN_ANNOTATION}: expected pod addresses separated by commas${bad.length > 0 ? `, got ${JSON.stringify((bad[0] as string).slice(0, 60))}` : ''}`);
        continue;
      }
    }
    candidates.push({ service: s, vips, affinity: affinityText, encap: encapText as Encap | undefined, drained });
  }

  // A VIP asked for by two Services: the older keeps it; equally old or of unknown age, neither.
  const byVip = new Map<string, (typeof candidates)[number][]>();
  for (const c of candidates) for (const v of c.vips) byVip.set(v, [...(byVip.get(v) ?? []), c]);
  const losers = new Map<(typeof candidates)[number], string>();
  for (const [vip, group] of byVip) {
    if (group.length < 2) continue;
    const ages = group.map((c) => c.service.createdAt);
    const known = ages.every((a) => a !== undefined);
    const oldest = known ? Math.min(...(ages)) : undefined;
    const keepers = oldest === undefined ? [] : group.filter((c) => c.service.createdAt === oldest);
    const keeper = keepers.length === 1 ? keepers[0] : undefined;
    for (const c of group) {
      if (c === keeper) continue;
      const others = group.filter((o) => o !== c).map((o) => id(o.service)).join(', ');
      losers.set(c, `${TUNNEL_ANNOTATION}: ${vip} is also asked for by ${others}${keeper ? ', which is older' : ' (neither is older: neither gets it)'}`);
    }
  }

  const services: TunnelService[] = [];
  const served = (c: (typeof candidates)[number]) => serve === undefined || (c.encap === undefined ? serve.unmarked : c.encap === serve.encap);
  for (const c of candidates) {
    if (!served(c)) continue;
    const lost = losers.get(c);
    if (lost !== undefined) {
      refused.push({ namespace: c.service.namespace, name: c.service.name, reason: lost });
      continue;
    }
    const endpoints = new Map<string, TunnelEndpoint>();
    const ignored: string[] = [];
    for (const slice of view.endpointSlices ?? []) {
      if (slice.namespace !== c.service.namespace || slice.serviceName !== c.service.name || slice.addressType === 'FQDN') continue;
      for (const e of slice.endpoints) {
        const serving = e.serving ?? e.ready;
        const terminating = e.terminating ?? false;
        if (!serving && !e.ready) continue;
        for (const a of e.addresses) {
          const address = canonicalIP(a);
          if (address === undefined) continue;
          // An endpoint is a pod: its address lies in a node's pod CIDR — the node it names, when it names one. Else
          // an EndpointSlice could aim the tunnel at any address (a node's, another network's).
          const owner = podCidrs.find((p) => networkContains(p.net, address));
          if (owner === undefined || (e.nodeName !== undefined && e.nodeName !== owner.node)) {
            if (ignored.length < 16) ignored.push(owner === undefined ? `${address}: in no node's pod CIDR` : `${address}: in ${owner.node}'s pod CIDR, not in that of ${e.nodeName ?? ''}, the node it names`);
            continue;
          }
          const draining = terminating || c.drained.has(address);
          const prev = endpoints.get(address);
          // One address in two slices (a slice being replaced): active wins over draining.
          if (prev && prev.state === 'active') continue;
          endpoints.set(address, { address, family: familyOf(address) as Family, nodeName: owner.node, state: draining ? 'draining' : 'active' });
        }
      }
    }
    if (endpoints.size > LIMITS.endpointsPerService) {
      refused.push({ namespace: c.service.namespace, name: c.service.name, reason: `${String(endpoints.size)} endpoints, more than ${String(LIMITS.endpointsPerService)}` });
      continue;
    }
    services.push({
      namespace: c.service.namespace,
      name: c.service.name,
      uid: c.service.uid,
      vips: c.vips,
      affinity: c.affinity,
      encap: c.encap,
      endpoints: [...endpoints.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0)),
      ignored,
    });
  }
  const order = (a: { namespace: string; name: string }, b: { namespace: string; name: string }) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0);
  return { services: services.sort(order), refused: refused.sort(order) };
}
