import { canonicalIP, canonicalNetwork, cidr, describeValue, intInRange, networksOverlap, nodeSelector, parseNetwork, port, z } from '@weft/core';

/** Every link the plugin owns starts with this: the overlay's VTEP (`weft-vx0`) and each segment's (`weft-vx<name>`). */
export const LINK_PREFIX = 'weft-vx';

/** The highest VXLAN network identifier (24 bits). */
export const MAX_VNI = 16_777_215;

const NODE_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** `address/prefix` with the host part kept (`10.200.0.1/24`): an interface address. */
const interfaceAddress = () =>
  z.string().refine((s) => canonicalNetwork(s) !== undefined && canonicalIP(s.slice(0, s.lastIndexOf('/'))) !== undefined, {
    error: (iss) => `expected an interface address like "10.200.0.1/24" or "fd00:200::1/64", got ${describeValue(iss.input)}`,
  });

/** A declared layer-2 segment between the nodes its selector picks. */
export const Segment = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z][a-z0-9]{0,7}$/, { error: (iss) => `expected 1-8 lowercase letters and digits starting with a letter, got ${describeValue(iss.input)}` })
    .meta({ description: "the segment's name; its interface on every member is weft-vx<name>" }),
  vni: intInRange(1, MAX_VNI).meta({ description: "the segment's VXLAN network identifier; unique among the segments and the overlay" }),
  nodeSelector: nodeSelector()
    .default({})
    .meta({
      description:
        'the member nodes: those with all these labels ({} is every node). Prefer labels under node-restriction.kubernetes.io/, which a node cannot set on itself',
    }),
  addresses: z
    .strictObject({
      pools: z
        .array(cidr())
        .max(2)
        .default([])
        .meta({ description: 'at most one IPv4 and one IPv6 network: every member gets an address of each, the same on every node (hash of its name; the older node keeps a contested one)' }),
      nodes: z
        .record(z.string().regex(NODE_NAME, { error: (iss) => `expected a node name, got ${describeValue(iss.input)}` }), z.array(interfaceAddress()).min(1).max(4))
        .default({})
        .meta({ description: "per node, its addresses with prefix (\"10.200.0.1/24\"): they replace the pools' for that node" }),
    })
    .prefault({})
    .meta({ description: "what each member's interface gets besides its IPv6 link-local address (which every member has)" }),
  bridge: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/, { error: (iss) => `expected an interface name (1-15 characters), got ${describeValue(iss.input)}` })
    .optional()
    .meta({ description: 'a bridge to attach the interface to: one under weft-vx is made by the plugin; any other must exist (the operator\'s); another plugin\'s (weft-…) is refused' }),
  mtu: intInRange(576, 65535).optional().meta({ description: "the interface's MTU; absent: the underlay's minus the VXLAN overhead" }),
});
export type Segment = z.output<typeof Segment>;

/** The `plugins.vxlan` section. */
export const VxlanConfig = z
  .strictObject({
    mode: z
      .enum(['overlay', 'segments'], { error: (iss) => `expected overlay or segments, got ${describeValue(iss.input)}` })
      .default('overlay')
      .meta({ description: 'overlay: carry pod traffic between nodes (and the segments); segments: only the declared segments' }),
    interface: z
      .string()
      .regex(/^weft-vx[0-9]{1,8}$/, { error: (iss) => `expected "weft-vx" and 1-8 digits, got ${describeValue(iss.input)}` })
      .default('weft-vx0')
      .meta({ description: "the overlay's VTEP (mode overlay)" }),
    vni: intInRange(1, MAX_VNI).default(1).meta({ description: "the overlay's VXLAN network identifier" }),
    port: port().default(4789).meta({ description: 'UDP port of every VTEP of the plugin (IANA: 4789)' }),
    underlay: z
      .enum(['node', 'wireguard'], { error: (iss) => `expected node or wireguard, got ${describeValue(iss.input)}` })
      .default('node')
      .meta({
        description:
          "node: VTEPs on the nodes' internal addresses; wireguard: on the WireGuard mesh's overlay addresses (the traffic is encrypted; needs the wireguard plugin, and mode segments: the mesh routes the pod CIDRs itself)",
      }),
    family: z
      .enum(['auto', 'ipv4', 'ipv6'], { error: (iss) => `expected auto, ipv4 or ipv6, got ${describeValue(iss.input)}` })
      .default('auto')
      .meta({ description: "the underlay's family: auto takes IPv4 when this node has an internal IPv4 address, else IPv6" }),
    directRouting: z
      .boolean()
      .default(true)
      .meta({ description: 'send to peers on the same underlay subnet (and in the same location) as plain routed packets, without encapsulation' }),
    mtu: intInRange(576, 65535).nullable().default(null).meta({ description: "the overlay VTEP's MTU; null: the underlay's minus 50 (IPv4) or 70 (IPv6)" }),
    segments: z.array(Segment).max(64).default([]).meta({ description: 'declared layer-2 segments between selected nodes (head-end replication: broadcast and multicast work)' }),
  })
  .superRefine((c, ctx) => {
    if (c.underlay === 'wireguard' && c.mode === 'overlay') {
      ctx.addIssue({ code: 'custom', path: ['underlay'], message: 'underlay wireguard needs mode segments: with the mesh, pod traffic already goes through WireGuard (its routes); the vxlan overlay would fight them' });
    }
    const vnis = new Map<number, string>(c.mode === 'overlay' ? [[c.vni, 'the overlay']] : []);
    const names = new Set<string>();
    const networks: { net: NonNullable<ReturnType<typeof parseNetwork>>; text: string; segment: string }[] = [];
    c.segments.forEach((s, i) => {
      if (names.has(s.name)) ctx.addIssue({ code: 'custom', path: ['segments', i, 'name'], message: `segment ${s.name} is declared twice` });
      names.add(s.name);
      const clash = vnis.get(s.vni);
      if (clash !== undefined) ctx.addIssue({ code: 'custom', path: ['segments', i, 'vni'], message: `VNI ${String(s.vni)} is already ${clash}'s` });
      else vnis.set(s.vni, `segment ${s.name}`);
      if (s.bridge !== undefined && s.bridge.startsWith('weft-') && !s.bridge.startsWith(LINK_PREFIX)) {
        ctx.addIssue({ code: 'custom', path: ['segments', i, 'bridge'], message: `${s.bridge} belongs to another plugin (weft-…); use a bridge of your own, or one under ${LINK_PREFIX}, which this plugin makes` });
      }
      if (s.bridge !== undefined && s.bridge === `${LINK_PREFIX}${s.name}`) {
        ctx.addIssue({ code: 'custom', path: ['segments', i, 'bridge'], message: `${s.bridge} is the segment's own VXLAN interface` });
      }
      const families = new Set<number>();
      s.addresses.pools.forEach((p, j) => {
        const net = parseNetwork(p);
        if (!net) return;
        if (families.has(net.family)) ctx.addIssue({ code: 'custom', path: ['segments', i, 'addresses', 'pools', j], message: `a second IPv${String(net.family)} pool; one per family` });
        families.add(net.family);
        if ((net.family === 4 && net.prefix > 30) || (net.family === 6 && net.prefix > 126)) {
          ctx.addIssue({ code: 'custom', path: ['segments', i, 'addresses', 'pools', j], message: `${p} is too small for a segment's members` });
        }
        networks.push({ net, text: p, segment: s.name });
      });
      for (const [node, list] of Object.entries(s.addresses.nodes)) {
        list.forEach((a, j) => {
          const net = parseNetwork(a);
          if (net) networks.push({ net, text: a, segment: s.name });
          else ctx.addIssue({ code: 'custom', path: ['segments', i, 'addresses', 'nodes', node, j], message: `not an address: ${a}` });
        });
      }
    });
    // Two segments whose networks overlap would route one segment's traffic into the other.
    for (let a = 0; a < networks.length; a++) {
      for (let b = a + 1; b < networks.length; b++) {
        const x = networks[a] as (typeof networks)[number];
        const y = networks[b] as (typeof networks)[number];
        if (x.segment === y.segment || !networksOverlap(x.net, y.net)) continue;
        const i = c.segments.findIndex((s) => s.name === y.segment);
        ctx.addIssue({ code: 'custom', path: ['segments', i, 'addresses'], message: `${y.text} (segment ${y.segment}) overlaps ${x.text} (segment ${x.segment})` });
      }
    }
  });
export type VxlanConfig = z.output<typeof VxlanConfig>;

/** The label keys the config's selectors name: what the plugin reads of the other nodes besides its annotation. */
export function selectorLabels(config: VxlanConfig): string[] {
  return [...new Set(config.segments.flatMap((s) => Object.keys(s.nodeSelector)))].sort();
}
