import { canonicalEndpoint, cidr, describeValue, duration, intInRange, isWireGuardKey, parseNetwork, port, z } from '@weft/core';

/** The interface's name: it must start with the plugin's link prefix (`weft-wg`), 15 characters at most. */
export const LINK_PREFIX = 'weft-wg';

const publicKey = () =>
  z.string().refine((s) => isWireGuardKey(s), { error: (iss) => `expected a base64 WireGuard public key (44 characters), got ${describeValue(iss.input)}` });

const endpoint = () =>
  z.string().refine((s) => canonicalEndpoint(s) !== undefined, {
    error: (iss) => `expected an endpoint ip:port or [ipv6]:port, got ${describeValue(iss.input)}`,
  });

/** A WireGuard peer outside the cluster: a laptop, a VPN gateway, another site. */
export const ExternalPeer = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, { error: (iss) => `expected a DNS-label-like name (a-z, 0-9, . and -), got ${describeValue(iss.input)}` })
    .meta({ description: 'a name for logs, metrics and `weft wireguard peer-config NAME`' }),
  publicKey: publicKey(),
  allowedIPs: z.array(cidr()).min(1).meta({ description: 'the networks the peer owns; routed to it from every node' }),
  endpoint: endpoint().optional().meta({ description: 'where to reach it; absent: it must reach the cluster first' }),
  persistentKeepalive: intInRange(0, 65535).default(0).meta({ description: 'seconds; 0 is off' }),
});
export type ExternalPeer = z.output<typeof ExternalPeer>;

const ipv4Range = () =>
  cidr().refine((s) => parseNetwork(s)?.family === 4 && (parseNetwork(s)?.prefix ?? 33) <= 30, { error: (iss) => `expected an IPv4 CIDR of /30 or larger, got ${describeValue(iss.input)}` });
const ulaRange = () =>
  cidr().refine(
    (s) => {
      const n = parseNetwork(s);
      return n?.family === 6 && n.prefix >= 8 && n.prefix <= 96 && n.base >> 120n === 0xfdn;
    },
    { error: (iss) => `expected an IPv6 ULA CIDR inside fd00::/8 of /96 or larger, got ${describeValue(iss.input)}` },
  );

/** The `plugins.wireguard` section. */
export const WireGuardConfig = z.strictObject({
  interface: z
    .string()
    .regex(/^weft-wg[a-z0-9]{0,8}$/, { error: (iss) => `expected "weft-wg" and up to 8 lowercase letters or digits, got ${describeValue(iss.input)}` })
    .default('weft-wg0')
    .meta({ description: 'the WireGuard interface; it must start with weft-wg (what the plugin owns)' }),
  port: port().default(51820).meta({ description: 'UDP listen port, published in the endpoint' }),
  granularity: z
    .enum(['full', 'location'], { error: (iss) => `expected full or location, got ${describeValue(iss.input)}` })
    .default('location')
    .meta({ description: 'full: every node peers with every other; location: one leader per location carries WireGuard' }),
  mtu: intInRange(1280, 65535).nullable().default(null).meta({ description: "the interface's MTU; null: the underlay's MTU minus 80" }),
  overlayCIDR: ipv4Range().default('100.64.0.0/10').meta({ description: 'where overlay IPv4 addresses come from (one per node)' }),
  overlayCIDR6: ulaRange().default('fd77:6566:7400::/64').meta({ description: 'where overlay IPv6 addresses come from (same offset as the IPv4 one)' }),
  persistentKeepalive: intInRange(0, 65535).default(0).meta({ description: "seconds between keepalives to every peer (0: off); a node's weft.io/persistent-keepalive annotation overrides it" }),
  leaders: z
    .array(z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, { error: (iss) => `expected a node name, got ${describeValue(iss.input)}` }))
    .max(1000)
    .default([])
    .meta({ description: 'nodes preferred as their location\'s leader, most preferred first (the operator\'s choice: no node can put itself here)' }),
  heartbeat: duration({ min: 1_000 }).prefault('30s').meta({ description: 'how often the node re-reads WireGuard (repairing drift, refreshing metrics); nothing is published for it' }),
  peers: z.array(ExternalPeer).default([]).meta({ description: 'peers outside the cluster' }),
});
export type WireGuardConfig = z.output<typeof WireGuardConfig>;
