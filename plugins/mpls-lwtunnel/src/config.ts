import { describeValue, duration, intInRange, nodeSelector, z } from '@weft/core';
import { isPrime, MAX_TABLE_SIZE } from '@weft/service-tunnels';

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

/** A mask of contiguous bits, at least 4 and at most 16 of them (15 to 65,535 endpoint slots). */
function markMask() {
  return z.int().refine(
    (m) => {
      if (m <= 0 || m > 0x7fffffff) return false;
      const shift = Math.log2(m & -m);
      const bits = m / 2 ** shift;
      return Number.isInteger(Math.log2(bits + 1)) && Math.log2(bits + 1) >= 4 && Math.log2(bits + 1) <= 16;
    },
    { error: (iss) => `expected a mask of 4-16 contiguous bits like 0x0fff0000, got ${describeValue(iss.input)}` },
  );
}

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
    seed: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: (iss) => `expected 1-64 letters, digits, . _ or -, got ${describeValue(iss.input)}` })
      .optional()
      .meta({ description: "the Maglev seed every ingress node shares; absent: each Service's own, from its UID (the same on every node)" }),
    seedPerNode: z
      .boolean()
      .default(false)
      .meta({ description: "for comparison only: each ingress node seeds its tables with its own name, so that a flow that changes ingress node changes endpoint — what the shared seed prevents" }),
    tableSize: intInRange(251, MAX_TABLE_SIZE)
      .refine(isPrime, { error: (iss) => `expected a prime (Maglev's table size), got ${describeValue(iss.input)}` })
      .default(16_381)
      .meta({ description: 'buckets per VIP (a prime, at least 100 × the endpoints for shares within 1 %): every ingress node keeps one nftables map element per bucket' }),
    fwmarkMask: markMask()
      .default(0x0fff0000)
      .meta({ description: "the packet mark bits that carry a flow's endpoint slot on an ingress node; keep them clear of other users' (kube-proxy's 0x4000/0x8000, Calico's, Cilium's). The gre-tunnel plugin may use the same bits: a Service is one plugin's, and each plugin's tables hold only its own VIPs" }),
    tableBase: intInRange(256, 0x7fff0000)
      .default(0x5800)
      .meta({ description: 'the routing table of endpoint slot N is tableBase + N (ingress nodes); keep it apart from the gre-tunnel plugin\'s (0x5700)' }),
    pins: z
      .strictObject({
        size: intInRange(1024, 4_194_304).default(65_536).meta({ description: 'flows pinned at once per address family on an ingress node' }),
        timeout: duration({ min: 10_000, max: 86_400_000 }).prefault('10m').meta({ description: "how long a flow's pin outlives its last packet" }),
      })
      .prefault({})
      .meta({ description: "each flow's endpoint, remembered on the ingress node that saw it, so that a change of the table does not move it" }),
    drainTimeout: duration({ min: 1000, max: 86_400_000 })
      .prefault('5m')
      .meta({ description: 'how long a draining endpoint keeps its established flows before they are moved' }),
  })
  .superRefine((c, ctx) => {
    const shift = Math.log2(c.fwmarkMask & -c.fwmarkMask);
    const slots = c.fwmarkMask / 2 ** shift;
    if (c.tableBase + slots > 0xffffffff) ctx.addIssue({ code: 'custom', path: ['tableBase'], message: `tableBase + ${String(slots)} slots passes the last routing table` });
    if (c.tableBase <= 255 && c.tableBase + slots >= 253) ctx.addIssue({ code: 'custom', path: ['tableBase'], message: 'the slot tables would include main, local or default (253-255)' });
  });
export type MplsLwtunnelConfig = z.output<typeof MplsLwtunnelConfig>;

/** The label keys the ingress selector reads. */
export function selectorLabels(config: MplsLwtunnelConfig): string[] {
  return Object.keys(config.ingress.nodeSelector);
}
