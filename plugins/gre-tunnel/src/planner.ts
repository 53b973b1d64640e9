import type { DesiredState, Family, Link } from '@weft/core';
import { type IngressClassification, type IngressVip, type MaglevTable, planClassification, type SlotRecord, type TunnelService } from '@weft/service-tunnels';
import { DEVICES, type GreTunnelConfig, RULE_PRIORITY } from './config.js';

/** The plugin's nftables table, on ingress nodes and in pods. */
export const NFT_TABLE = 'weft-gre-tunnel';

/** One VIP on an ingress node. */
export type VipPlan = IngressVip;
/** What an ingress node wants: its VIPs, the endpoint slots, and the desired state. */
export type IngressPlan = IngressClassification;

/**
 * The ingress node's plan: the shared classification (@weft/service-tunnels: Maglev per VIP with the shared seed,
 * the nftables bucket map and flow pins, a rule and a table per endpoint slot), where the route to the VIP in a
 * slot's table carries the packet to the pod through the GRE device in metadata mode (`encap ip dst <pod IP>`) —
 * one device for every endpoint.
 */
export function planIngress(
  services: readonly TunnelService[],
  config: Pick<GreTunnelConfig, 'seed' | 'seedPerNode' | 'tableSize' | 'fwmarkMask' | 'tableBase' | 'drainTimeout' | 'pins'>,
  context: { self: string; now: number; previousSlots: ReadonlyMap<string, SlotRecord>; previousTables?: ReadonlyMap<string, MaglevTable> },
): IngressPlan {
  const plan = planClassification(services, config, context, {
    nftTable: NFT_TABLE,
    rulePriority: RULE_PRIORITY,
    sendOnly: [DEVICES[4], DEVICES[6]],
    carry: (endpoint, _vip, family) => ({ dev: DEVICES[family], ipEncap: { dst: endpoint } }),
  });
  if (plan.vips.length === 0) return plan;
  const families = new Set<Family>(plan.vips.filter((v) => v.endpoints.some((e) => e.state !== 'drained')).map((v) => v.family));
  const links: Link[] = [...families].sort().map((f) => ({ kind: f === 4 ? 'gre' : 'ip6gre', name: DEVICES[f], external: true }));
  return { ...plan, desired: { links, ...plan.desired } };
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
