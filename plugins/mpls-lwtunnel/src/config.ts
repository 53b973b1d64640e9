import { duration, intInRange, nodeSelector, z } from '@weft/core';
import { checkClassificationConfig, classificationConfig } from '@weft/service-tunnels';

/** Every link the plugin owns starts with this: `weft-mp0`, the dummy device that holds the VIPs in a pod. */
export const LINK_PREFIX = 'weft-mp';
/** The pod's device for its VIPs (a pod's loopback is not the plugin's: the kernel driver manages addresses only on links it owns). */
export const POD_DEVICE = 'weft-mp0';
/** The label a node swaps an endpoint's label for, toward the pod; the pod pops it and delivers the packet itself. */
export const POD_LABEL = 100;
/** The priority of the per-slot ip rules on ingress nodes (fwmark → the slot's table). */
export const RULE_PRIORITY = 21_100;
/** The node annotation with this node's labels: `<pod IP>=<label>,…`. */
export const LABELS_ANNOTATION = 'weft.io/mpls-labels';
/** The highest label a config may use: the kernel keeps a pointer per label up to `net.mpls.platform_labels`. */
export const MAX_LABEL = 1_000_000;

/** The `plugins.mpls-lwtunnel` section. */
export const MplsLwtunnelConfig = z
  .strictObject({
    ingress: z
      .strictObject({
        nodeSelector: nodeSelector().meta({
          description:
            "the ingress nodes: those with all these labels. The routers send VIP traffic to them (BGP/ECMP, not weft's part); they pick an endpoint per flow and push its label toward its node, which must be on-link (same location, a connected subnet). Prefer labels under node-restriction.kubernetes.io/, which a node cannot set on itself",
        }),
      })
      .meta({ description: 'which nodes take VIP traffic from outside' }),
    serveUnmarked: z
      .boolean()
      .default(false)
      .meta({ description: 'whether Services without weft.io/tunnel-encap are tunnelled by this plugin (those with `weft.io/tunnel-encap: mpls` always are). Set it where this is the only tunnel plugin, and the gre-tunnel plugin\'s serveUnmarked false where both run' }),
    labels: z
      .strictObject({
        first: intInRange(16, MAX_LABEL).default(1000).meta({ description: 'the first label a node gives its endpoint pods (0-15 are reserved)' }),
        last: intInRange(16, MAX_LABEL).default(4999).meta({ description: 'the last one; net.mpls.platform_labels is set to last + 1 on nodes with endpoints (the kernel keeps 8 bytes per label)' }),
        hold: duration({ min: 0, max: 86_400_000 })
          .prefault('10m')
          .meta({ description: 'how long a label stays unused after its pod stops being an endpoint: ingress nodes may push it until they see the change' }),
      })
      .prefault({})
      .refine((l) => l.last >= l.first, { error: 'labels.last must not be below labels.first' })
      .meta({ description: 'the labels each node gives its local endpoint pods (the same range on every node: one ConfigMap)' }),
    ...classificationConfig({ tableBase: 0x5800 }),
  })
  .superRefine(checkClassificationConfig);
export type MplsLwtunnelConfig = z.output<typeof MplsLwtunnelConfig>;

/** The label keys the ingress selector reads. */
export function selectorLabels(config: MplsLwtunnelConfig): string[] {
  return Object.keys(config.ingress.nodeSelector);
}
