import { canonicalIP, type Network, networkContains, type OverlayAddresses, type OverlayService, parseNetwork } from '@weft/core';
import type { MeshPlan } from './planner.js';

/**
 * The mesh as an overlay other plugins use (`overlayServiceRef`): each node's overlay addresses as the last plan has
 * them — a node the plan left out has none — and this node's own. Updated after every plan; listeners hear of a
 * change only.
 */
export class MeshOverlay implements OverlayService {
  private own: OverlayAddresses | undefined;
  private nodes = new Map<string, OverlayAddresses>();
  private key = '';
  /** The plan last taken: the planner hands back the same object while nothing it reads changed (a steady mesh). */
  private taken: MeshPlan | undefined;
  private readonly listeners = new Set<() => void>();
  private readonly ranges: Network[];

  constructor(
    readonly iface: string,
    overlayRanges: readonly string[],
  ) {
    this.ranges = overlayRanges.map((r) => parseNetwork(r)).filter((n): n is Network => n !== undefined);
  }

  get interface(): string {
    return this.iface;
  }

  self(): OverlayAddresses | undefined {
    return this.own;
  }

  node(name: string): OverlayAddresses | undefined {
    return this.nodes.get(name);
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Takes a new plan: the overlay addresses of every node in it (its networks of one address inside the overlay). */
  update(plan: MeshPlan): void {
    if (plan === this.taken) return;
    this.taken = plan;
    const own = this.addressesIn(plan.addresses);
    const nodes = new Map<string, OverlayAddresses>();
    for (const n of plan.nodes) {
      if (n.name === plan.self) continue;
      const a = this.addressesIn(n.networks);
      if (a.ip4 !== undefined || a.ip6 !== undefined) nodes.set(n.name, a);
    }
    const key = JSON.stringify([own, [...nodes]]);
    if (key === this.key) return;
    this.key = key;
    this.own = own.ip4 !== undefined || own.ip6 !== undefined ? own : undefined;
    this.nodes = nodes;
    for (const listener of this.listeners) listener();
  }

  private addressesIn(networks: readonly string[]): OverlayAddresses {
    return overlayHostAddresses(networks, this.ranges);
  }
}

/**
 * A node's overlay addresses among its networks (its planned addresses, a peer's allowed IPs): the first IPv4 and
 * the first IPv6 host address (/32, /128) inside the overlay's ranges, canonical.
 */
export function overlayHostAddresses(networks: readonly string[], ranges: readonly Network[]): OverlayAddresses {
  let ip4: string | undefined;
  let ip6: string | undefined;
  for (const cidr of networks) {
    const [ip, prefix] = cidr.split('/');
    const c = ip === undefined ? undefined : canonicalIP(ip);
    if (c === undefined || (prefix !== '32' && prefix !== '128') || !ranges.some((r) => networkContains(r, c))) continue;
    if (prefix === '32') ip4 ??= c;
    else ip6 ??= c;
  }
  return { ...(ip4 !== undefined ? { ip4 } : {}), ...(ip6 !== undefined ? { ip6 } : {}) };
}
