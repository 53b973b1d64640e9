import { describeValue, duration, intInRange, nodeSelector, z } from '@weft/core';
import { isPrime, MAX_TABLE_SIZE } from '@weft/service-tunnels';

/** Every link the plugin owns starts with this: `weft-gre0` (GRE, IPv4) and `weft-gre6` (ip6gre), on ingress nodes and in pods. */
export const LINK_PREFIX = 'weft-gre';
/** The priority of the per-slot ip rules (fwmark → the slot's table): all at one priority, the only one the plugin owns. */
export const RULE_PRIORITY = 21_000;
/** The GRE devices, in metadata mode, per outer family. */
export const DEVICES = { 4: 'weft-gre0', 6: 'weft-gre6' } as const;


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
    seed: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,64}$/, { error: (iss) => `expected 1-64 letters, digits, . _ or -, got ${describeValue(iss.input)}` })
      .optional()
      .meta({ description: "the Maglev seed every ingress node shares; absent: each Service's own, from its UID (the same on every node)" }),
    seedPerNode: z
      .boolean()
      .default(false)
      .meta({ description: "for comparison only: each ingress node seeds its tables with its own name (kube-service-tunnel's random per-node seed), so that a flow that changes ingress node changes endpoint — what the shared seed prevents" }),
    tableSize: intInRange(251, MAX_TABLE_SIZE)
      .refine(isPrime, { error: (iss) => `expected a prime (Maglev's table size), got ${describeValue(iss.input)}` })
      .default(16_381)
      .meta({
        description:
          "buckets per VIP (a prime, at least 100 × the endpoints for shares within 1 %): every ingress node keeps one nftables map element per bucket. 16,381 serves up to about 160 endpoints within 1 %; 65,537 up to 650, at 4× the kernel memory",
      }),
    fwmarkMask: markMask()
      .default(0x0fff0000)
      .meta({ description: "the packet and conntrack mark bits that carry a flow's endpoint slot on an ingress node (4,095 slots by default); keep them clear of other users' (kube-proxy's 0x4000/0x8000, Calico's, Cilium's)" }),
    tableBase: intInRange(256, 0x7fff0000)
      .default(0x5700)
      .meta({ description: 'the routing table of endpoint slot N is tableBase + N (ingress nodes)' }),
    pins: z
      .strictObject({
        size: intInRange(1024, 4_194_304).default(65_536).meta({ description: 'flows pinned at once per address family on an ingress node (a flow beyond it is hashed packet by packet: the same endpoint while the table stays)' }),
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
export type GreTunnelConfig = z.output<typeof GreTunnelConfig>;

/** The label keys the ingress selector reads. */
export function selectorLabels(config: GreTunnelConfig): string[] {
  return Object.keys(config.ingress.nodeSelector);
}
