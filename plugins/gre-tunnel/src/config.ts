import { nodeSelector, z } from '@weft/core';
import { checkClassificationConfig, classificationConfig } from '@weft/service-tunnels';

/** Every link the plugin owns starts with this: `weft-gre0` (GRE, IPv4) and `weft-gre6` (ip6gre), on ingress nodes and in pods. */
export const LINK_PREFIX = 'weft-gre';
/** The priority of the per-slot ip rules (fwmark → the slot's table): all at one priority, the only one the plugin owns. */
export const RULE_PRIORITY = 21_000;
/** The GRE devices, in metadata mode, per outer family. */
export const DEVICES = { 4: 'weft-gre0', 6: 'weft-gre6' } as const;

/** The `plugins.gre-tunnel` section. */
export const GreTunnelConfig = z
  .strictObject({
    ingress: z
      .strictObject({
        nodeSelector: nodeSelector().meta({
            description:
              "the ingress nodes: those with all these labels. The data centre's routers send VIP traffic to them (BGP/ECMP, not weft's part); they pick an endpoint per flow and tunnel it to the pod. Prefer labels under node-restriction.kubernetes.io/, which a node cannot set on itself",
          }),
      })
      .meta({ description: 'which nodes take VIP traffic from outside' }),
    serveUnmarked: z
      .boolean()
      .default(true)
      .meta({ description: "whether Services without weft.io/tunnel-encap are tunnelled by this plugin (those with `weft.io/tunnel-encap: gre` always are). Set it false where the mpls-lwtunnel plugin serves them (its serveUnmarked: true): one Service, one plugin" }),
    ...classificationConfig({ tableBase: 0x5700 }),
  })
  .superRefine(checkClassificationConfig);
export type GreTunnelConfig = z.output<typeof GreTunnelConfig>;

/** The label keys the ingress selector reads. */
export function selectorLabels(config: GreTunnelConfig): string[] {
  return Object.keys(config.ingress.nodeSelector);
}
