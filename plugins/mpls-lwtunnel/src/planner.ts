import { canonicalIP, type DesiredState, familyOf, networkContains, type NodeInfo, parseNetwork } from '@weft/core';
import { type IngressClassification, type IngressVip, type MaglevTable, type PlannedEndpoint, planClassification, type SlotRecord, type TunnelService } from '@weft/service-tunnels';
import { type MplsLwtunnelConfig, POD_DEVICE, POD_LABEL, RULE_PRIORITY } from './config.js';

/** What one label adds to a packet. */
const LABEL_BYTES = 4;

/** The plugin's nftables table, on ingress nodes and in pods. */
export const NFT_TABLE = 'weft-mpls-lwtunnel';

/** An interface of this node with its addresses (`198.18.0.11/24`): where on-link next hops are. */
export interface LocalInterface {
  readonly name: string;
  readonly addresses: readonly string[];
}

/** How an ingress node reaches an endpoint: its node's label for it, pushed toward the node's address on `dev`. */
export interface EndpointPath {
  readonly node: string;
  readonly label: number;
  readonly via: string;
  readonly dev: string;
}

/** An endpoint an ingress node does not use, and why (not on-link, no label yet…). */
export interface UnusedEndpoint {
  readonly service: string;
  readonly address: string;
  readonly node: string;
  readonly reason: string;
}

/** One VIP on an ingress node: the shared classification's, each endpoint with its node and label. */
export interface VipPlan extends Omit<IngressVip, 'endpoints'> {
  readonly endpoints: readonly (PlannedEndpoint & { readonly node: string; readonly label: number })[];
}

/** What an ingress node wants. */
export interface IngressPlan extends Omit<IngressClassification, 'vips'> {
  readonly vips: readonly VipPlan[];
  readonly unused: readonly UnusedEndpoint[];
}

/**
 * How this ingress node reaches each endpoint, or why it does not. An endpoint's node must be in this node's location
 * (or either has none) and have an address on one of this node's connected networks — the packet leaves with only a
 * label on it, so the next hop must be the endpoint's node itself — and must have published a label for it.
 */
export function endpointPaths(
  services: readonly TunnelService[],
  nodes: readonly NodeInfo[],
  self: { readonly name: string; readonly location: string | undefined; readonly interfaces: readonly LocalInterface[] },
  labelsOf: (node: string) => ReadonlyMap<string, number> | undefined,
): { paths: Map<string, EndpointPath>; unused: UnusedEndpoint[] } {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const networks = self.interfaces.flatMap((i) =>
    i.addresses.flatMap((a) => {
      const net = parseNetwork(a);
      return net ? [{ dev: i.name, net }] : [];
    }),
  );
  const own = new Set(self.interfaces.flatMap((i) => i.addresses.map((a) => canonicalIP(a.split('/')[0] as string))));
  const paths = new Map<string, EndpointPath>();
  const unused: UnusedEndpoint[] = [];
  for (const s of services) {
    for (const e of s.endpoints) {
      if (paths.has(e.address)) continue;
      const why = (reason: string) => unused.push({ service: `${s.namespace}/${s.name}`, address: e.address, node: e.nodeName ?? '?', reason });
      const node = e.nodeName === undefined ? undefined : byName.get(e.nodeName);
      if (!node) {
        why('its node is not in the cluster view');
        continue;
      }
      if (node.name === self.name) {
        why('on this ingress node itself: a label is pushed toward another node, never to oneself');
        continue;
      }
      if (self.location !== undefined && node.location !== undefined && self.location !== node.location) {
        why(`not on-link: ${node.name} is in location ${node.location}, this ingress node in ${self.location}`);
        continue;
      }
      let via: { address: string; dev: string } | undefined;
      for (const a of node.internalAddresses) {
        const ip = canonicalIP(a);
        if (ip === undefined) continue;
        if (own.has(ip)) continue; // another node claiming this node's address
        const on = networks.find((n) => networkContains(n.net, ip));
        if (on) {
          via = { address: ip, dev: on.dev };
          break;
        }
      }
      if (!via) {
        why(`not on-link: no address of ${node.name} (${node.internalAddresses.join(', ') || 'none'}) is on a network of this node`);
        continue;
      }
      const label = labelsOf(node.name)?.get(e.address);
      if (label === undefined) {
        why(`${node.name} has published no label for it (yet)`);
        continue;
      }
      paths.set(e.address, { node: node.name, label, via: via.address, dev: via.dev });
    }
  }
  return { paths, unused };
}

/**
 * The ingress node's plan: the shared classification (@weft/service-tunnels) over the endpoints this node reaches,
 * where the route to the VIP in a slot's table pushes the endpoint's label toward its node:
 * `VIP encap mpls <label> via <node> dev <underlay>`. No tunnel device at all.
 */
export function planIngress(
  services: readonly TunnelService[],
  paths: ReadonlyMap<string, EndpointPath>,
  unused: readonly UnusedEndpoint[],
  config: Pick<MplsLwtunnelConfig, 'seed' | 'seedPerNode' | 'tableSize' | 'fwmarkMask' | 'tableBase' | 'drainTimeout' | 'pins'>,
  context: { self: string; now: number; previousSlots: ReadonlyMap<string, SlotRecord>; previousTables?: ReadonlyMap<string, MaglevTable> },
): IngressPlan {
  // Only the endpoints this node reaches take part: its tables are over them.
  const reachable = services.map((s) => ({ ...s, endpoints: s.endpoints.filter((e) => paths.has(e.address)) }));
  const path = (address: string) => paths.get(address) as EndpointPath;
  const plan = planClassification(reachable, config, context, {
    nftTable: NFT_TABLE,
    rulePriority: RULE_PRIORITY,
    sendOnly: [],
    carry: (endpoint) => ({ via: path(endpoint).via, dev: path(endpoint).dev, mpls: [path(endpoint).label] }),
  });
  const vips = plan.vips.map((v) => ({ ...v, endpoints: v.endpoints.map((e) => ({ ...e, node: path(e.address).node, label: path(e.address).label })) }));
  return { ...plan, vips, unused };
}

/**
 * What a node with endpoint pods wants: MPLS input on the links its peers reach it by, label space up to the range's
 * end, and per pod an MPLS route that swaps the pod's label for {@link POD_LABEL} toward the pod's address (the kernel
 * picks the link by the address, as for any next hop).
 */
export function nodeState(labels: ReadonlyMap<string, number>, underlay: readonly string[], last: number): DesiredState {
  if (labels.size === 0) return {};
  return {
    sysctls: [{ key: 'net.mpls.platform_labels', value: String(last + 1) }, ...[...new Set(underlay)].sort().map((dev) => ({ key: `net.mpls.conf.${dev}.input`, value: '1' }))],
    mplsRoutes: [...labels].sort(([, a], [, b]) => a - b).map(([address, label]) => ({ label, as: [POD_LABEL], via: address })),
  };
}

/**
 * What an endpoint pod gets in its namespace: MPLS input on its interface, a label space that holds
 * {@link POD_LABEL}, a route that pops that label and hands the packet to the pod's own stack (`dev lo`), and its VIPs
 * on a device of the plugin's (a dummy: the VIPs are local addresses, and the pod's sockets on 0.0.0.0/:: take
 * them). Only packets to the VIPs come out of a label: anything else that arrives on the loopback from a foreign
 * source is dropped. The MSS the pod offers on the VIPs is clamped to its interface's MTU less the label: the node
 * swaps the label toward the pod without a word when a packet does not fit (MPLS sends no ICMP), so a client must never
 * send a segment that needs more than the pod's MTU with the label on.
 */
export function podState(vips: readonly string[], podInterface: string, mtu: number): DesiredState {
  const v4 = vips.filter((v) => familyOf(v) === 4);
  const v6 = vips.filter((v) => familyOf(v) === 6);
  // IPv4 and TCP headers 40 bytes (IPv6 60), the label 4.
  const mss4 = mtu - 40 - LABEL_BYTES;
  const mss6 = mtu - 60 - LABEL_BYTES;
  const body = [
    'chain prerouting {',
    '  type filter hook prerouting priority raw; policy accept;',
    `  iifname "lo" fib saddr type local accept`,
    ...(v4.length > 0 ? [`  iifname "lo" ip daddr { ${v4.join(', ')} } accept`] : []),
    ...(v6.length > 0 ? [`  iifname "lo" ip6 daddr { ${v6.join(', ')} } accept`] : []),
    '  iifname "lo" drop',
    '}',
    'chain output {',
    '  type filter hook output priority mangle; policy accept;',
    ...(v4.length > 0 ? [`  ip saddr { ${v4.join(', ')} } tcp flags & (syn | rst) == syn tcp option maxseg size > ${String(mss4)} tcp option maxseg size set ${String(mss4)}`] : []),
    ...(v6.length > 0 ? [`  ip6 saddr { ${v6.join(', ')} } tcp flags & (syn | rst) == syn tcp option maxseg size > ${String(mss6)} tcp option maxseg size set ${String(mss6)}`] : []),
    '}',
  ].join('\n');
  return {
    links: [{ kind: 'dummy', name: POD_DEVICE }],
    addresses: vips.map((v) => ({ dev: POD_DEVICE, address: `${v}/${familyOf(v) === 6 ? 128 : 32}` })),
    mplsRoutes: [{ label: POD_LABEL, dev: 'lo' }],
    sysctls: [
      { key: 'net.mpls.platform_labels', value: String(POD_LABEL + 1) },
      { key: `net.mpls.conf.${podInterface}.input`, value: '1' },
      // The packet comes in on the loopback from the client's address, and its reply leaves by the pod's interface:
      // strict reverse-path filtering would drop it; loose (2) lets it in.
      ...(v4.length > 0 ? [{ key: 'net.ipv4.conf.all.rp_filter', value: '2' }, { key: 'net.ipv4.conf.lo.rp_filter', value: '2' }] : []),
    ],
    nftables: [{ family: 'inet', name: NFT_TABLE, body }],
  };
}
