import { isIP } from 'node:net';
import { addressAt, canonicalIP, type ClusterView, type Network, networkContains, networkSize, type NodeInfo, type OverlayService, parseNetwork } from '@weft/core';
import type { KeepaliveConfig, Plane } from './config.js';

/** Why a node has no overlay address when no enabled plugin provides an overlay. */
export const NO_OVERLAY = 'no overlay: no enabled plugin provides one (the wireguard plugin does)';

/** Where to probe a node on a plane, or why it cannot be. */
export type PlaneAddress = { readonly address: string } | { readonly missing: string };

/** IPv4 before IPv6. */
const pick = (list: readonly string[]) => list.find((a) => isIP(a) === 4) ?? list.find((a) => isIP(a) === 6);

/** The first host address of a CIDR (the pod CIDR's gateway, which the node answers on). */
export function firstHost(cidr: string): string | undefined {
  const net = parseNetwork(cidr);
  return net ? addressAt(net, networkSize(net) > 2n ? 1n : 0n) : undefined;
}

/**
 * A node's address on a plane. The overlay's comes from the plugin that provides the overlay (its plan, checked
 * against its address plan), not from another node's annotations.
 */
export function addressOn(node: NodeInfo, plane: Plane, overlay?: OverlayService): PlaneAddress {
  if (plane === 'underlay') {
    const a = pick(node.internalAddresses);
    return a ? { address: a } : { missing: 'no internal address' };
  }
  if (plane === 'overlay') {
    if (overlay === undefined) return { missing: NO_OVERLAY };
    const on = overlay.node(node.name);
    const a = on?.ip4 ?? on?.ip6;
    return a ? { address: a } : { missing: `not on the overlay (${overlay.interface}) yet` };
  }
  const cidr = node.podCIDRs.find((c) => isIP(c.split('/')[0] ?? '') === 4) ?? node.podCIDRs[0];
  const a = cidr ? firstHost(cidr) : undefined;
  return a ? { address: a } : { missing: 'no pod CIDR' };
}

/**
 * Whether an address belongs to a node of the cluster on some plane: one of its addresses, its overlay addresses,
 * or an address in its pod CIDRs (the view's, so already checked by the core). The UDP echo answers only these.
 */
export function clusterAddresses(nodes: readonly NodeInfo[], overlay?: OverlayService): (address: string) => boolean {
  const exact = new Set<string>();
  const networks: Network[] = [];
  for (const n of nodes) {
    const on = overlay?.node(n.name);
    for (const a of [...n.internalAddresses, ...n.externalAddresses, on?.ip4 ?? '', on?.ip6 ?? '']) {
      const c = canonicalIP(a.trim());
      if (c) exact.add(c);
    }
    for (const cidr of n.podCIDRs) {
      const net = parseNetwork(cidr);
      if (net) networks.push(net);
    }
  }
  return (address) => {
    const c = canonicalIP(address);
    return c !== undefined && (exact.has(c) || networks.some((net) => networkContains(net, c)));
  };
}

/**
 * Where to probe each peer this node probes, per plane: a pure function of the view (whose claims the core has
 * checked: a refused pod CIDR is not there to be probed) and the config.
 */
export function probeTargets(
  view: ClusterView,
  probing: readonly string[],
  config: Pick<KeepaliveConfig, 'planes' | 'underlayAcrossLocations'>,
  overlay?: OverlayService,
): { name: string; addresses: Partial<Record<Plane, PlaneAddress>> }[] {
  const byName = new Map(view.nodes.map((n) => [n.name, n]));
  const across = (n: NodeInfo) => !config.underlayAcrossLocations && n.location !== view.self.location;
  return probing.flatMap((name) => {
    const n = byName.get(name);
    if (!n) return [];
    const addresses: Partial<Record<Plane, PlaneAddress>> = {};
    for (const p of config.planes) addresses[p] = p === 'underlay' && across(n) ? { missing: `in another location (${n.location ?? 'none'}): the underlay across locations is not probed` } : addressOn(n, p, overlay);
    return [{ name, addresses }];
  });
}
