/**
 * The typed model of what weft manages in a network namespace, one discriminated union per object kind (after
 * vishvananda/netlink). Plugins build a {@link DesiredState}; the kernel driver diffs it against what the kernel
 * has for that owner and applies the difference in one batch.
 */

/** Attributes every link kind shares. */
export interface LinkBase {
  /** Interface name, at most 15 characters; must start with the owner's link prefix. */
  readonly name: string;
  readonly mtu?: number;
  /** Default true. */
  readonly up?: boolean;
  /** A bridge (or other master) to enslave the link to. */
  readonly master?: string;
  /** MAC address (`aa:bb:cc:dd:ee:ff`). */
  readonly address?: string;
  /**
   * Create the link here, then move it into this named namespace (`ip link set dev NAME netns NS`): a tunnel's
   * underlay stays in this namespace while the device lives in the other (a pod's). Its addresses and routes there
   * belong to a driver bound to that namespace.
   */
  readonly netns?: string;
}

/** `ip link add NAME type bridge` */
export interface BridgeLink extends LinkBase {
  readonly kind: 'bridge';
}
/** `ip link add NAME type dummy` */
export interface DummyLink extends LinkBase {
  readonly kind: 'dummy';
}
/** `ip link add NAME type veth peer name PEER [netns PEER_NETNS]` */
export interface VethLink extends LinkBase {
  readonly kind: 'veth';
  /** The other end's name (also under the owner's prefix when it stays in this namespace). */
  readonly peer: string;
  /** Move the peer into this named namespace (a pod's, or another node's in the lab). */
  readonly peerNetns?: string;
}
/** `ip link add NAME type vxlan id VNI dstport PORT [local IP] [dev DEV] [no]learning` */
export interface VxlanLink extends LinkBase {
  readonly kind: 'vxlan';
  readonly vni: number;
  /** UDP port; default 4789. */
  readonly port?: number;
  readonly local?: string;
  /** Underlay device. */
  readonly dev?: string;
  /** Default false (flannel's choice: entries are programmed, not learned). */
  readonly learning?: boolean;
}
/**
 * `ip link add NAME type gre|ip6gre remote IP [local IP] [key KEY] [ttl TTL]`, or `… type gre|ip6gre external`: a
 * device in metadata mode (collect_md) that has no remote of its own — each route through it says where to
 * ({@link Route.ipEncap}) — and that receives the protocol's packets from any sender.
 */
export interface GreLink extends LinkBase {
  readonly kind: 'gre' | 'ip6gre';
  /** Required unless `external`; absent when it is. */
  readonly remote?: string;
  /** Metadata mode: no remote, local or key; default false. */
  readonly external?: boolean;
  readonly local?: string;
  readonly key?: number;
  readonly ttl?: number;
}
/** `ip link add NAME type ipip remote IP [local IP] [ttl TTL]` */
export interface IpipLink extends LinkBase {
  readonly kind: 'ipip';
  readonly remote: string;
  readonly local?: string;
  readonly ttl?: number;
}
/** `ip link add NAME type wireguard` (the device's keys and peers are a separate object). */
export interface WireGuardLink extends LinkBase {
  readonly kind: 'wireguard';
}

/** Every link kind weft manages. */
export type Link = BridgeLink | DummyLink | VethLink | VxlanLink | GreLink | IpipLink | WireGuardLink;
/** The kinds of link. */
export type LinkKind = Link['kind'];

/** `ip addr replace ADDRESS/PREFIX dev DEV` */
export interface Address {
  readonly dev: string;
  /** Address with prefix length: `192.0.2.1/24`, `fd00::1/64`. */
  readonly address: string;
}

/** `ip route replace DST [via VIA] [dev DEV] [src SRC] [metric M] [table T] [onlink] [encap mpls L1/L2] proto P` */
export interface Route {
  /** Destination network (`198.18.0.0/24`, `2001:db8::/64`) or `default` / `default6`. */
  readonly dst: string;
  /** Routing table; default 254 (main). */
  readonly table?: number;
  /** Absent: the kernel picks it by the next hop (and a route it holds through any device is this one). */
  readonly dev?: string;
  readonly via?: string;
  readonly src?: string;
  /** Default 0 for IPv4, 1024 for IPv6 (what the kernel stores). */
  readonly metric?: number;
  readonly onlink?: boolean;
  /** Push this MPLS label stack (`encap mpls 100/200`). */
  readonly mpls?: readonly number[];
  /**
   * A lightweight IP tunnel (`encap ip dst D [ttl T]`, `encap ip6 …` for an IPv6 `dst`): the packet leaves through
   * `dev`, a GRE device in metadata mode ({@link GreLink.external}), to the tunnel destination `dst` — one device for
   * any number of destinations. Not with `mpls`.
   */
  readonly ipEncap?: { readonly dst: string; readonly ttl?: number };
}

/**
 * An MPLS route (`ip -f mpls route replace LABEL …`): pop the label and deliver locally (`dev`, usually `lo`), or
 * swap it for the `as` stack and forward `via` a neighbour. Needs `net.mpls.platform_labels` > LABEL and
 * `net.mpls.conf.<dev>.input=1` on the receiving link (sysctls in the same desired state).
 */
export interface MplsRoute {
  readonly label: number;
  readonly dev?: string;
  /** Next hop for a swap (IPv4 or IPv6). */
  readonly via?: string;
  /** The labels that replace `label` (swap); absent to pop. */
  readonly as?: readonly number[];
}

/** `ip [-6] rule add priority P [fwmark M/MASK] [from SRC] [to DST] table T` */
export interface Rule {
  readonly priority: number;
  readonly table: number;
  /** Default 4. */
  readonly family?: 4 | 6;
  readonly fwmark?: number;
  readonly fwmask?: number;
  readonly from?: string;
  readonly to?: string;
}

/** `ip neigh replace ADDRESS lladdr MAC dev DEV nud permanent` */
export interface Neighbour {
  readonly dev: string;
  readonly address: string;
  readonly lladdr: string;
}

/** `bridge fdb append MAC dev DEV dst IP` */
export interface FdbEntry {
  readonly dev: string;
  readonly lladdr: string;
  readonly dst: string;
}

/** `sysctl -w KEY=VALUE` (never removed: an empty desired state leaves sysctls as they are). */
export interface Sysctl {
  readonly key: string;
  readonly value: string;
}

/** A peer of a WireGuard device (`wg set DEV peer PUBKEY …`). */
export interface WireGuardPeer {
  /** Base64 public key (44 characters). */
  readonly publicKey: string;
  /** Base64 preshared key; never logged or printed. */
  readonly presharedKey?: string;
  /** `host:port` or `[v6]:port`; host is an IP address. */
  readonly endpoint?: string;
  /** Networks routed to this peer (CIDR). */
  readonly allowedIPs: readonly string[];
  /** Seconds; 0 or absent is off. */
  readonly persistentKeepalive?: number;
}

/**
 * A WireGuard device's configuration (`wg set DEV private-key FILE listen-port P fwmark M peer …`). The link itself
 * is a `{ kind: 'wireguard' }` link of the same name. Peers are changed in place: unchanged peers are not touched.
 */
export interface WireGuardDevice {
  readonly name: string;
  /** Base64 private key; never logged, printed or put on a command line. */
  readonly privateKey: string;
  readonly listenPort?: number;
  readonly fwmark?: number;
  readonly peers: readonly WireGuardPeer[];
}

/** What a WireGuard device knows of one peer at run time (`wg show DEV dump`). */
export interface WireGuardPeerStatus {
  readonly publicKey: string;
  /** Where the peer's packets last came from (after roaming or NAT), `host:port`; absent before any contact. */
  readonly endpoint?: string;
  readonly allowedIPs: readonly string[];
  /** Unix time (seconds) of the latest handshake; 0 when there has been none. */
  readonly latestHandshake: number;
  readonly receiveBytes: number;
  readonly transmitBytes: number;
  readonly persistentKeepalive: number;
}

/** A WireGuard device's run-time state: its listen port and what it knows of each peer. Never holds a key but public ones. */
export interface WireGuardDeviceStatus {
  readonly name: string;
  readonly publicKey: string;
  readonly listenPort: number;
  readonly peers: readonly WireGuardPeerStatus[];
}

/** A network interface of the namespace, owned or not: what a plugin may need to know of the underlay. */
export interface InterfaceInfo {
  readonly name: string;
  readonly mtu: number;
  readonly up: boolean;
  /** Addresses with prefix length (no IPv6 link-local ones). */
  readonly addresses: readonly string[];
}

/**
 * An nftables table, replaced atomically whenever it differs (`nft -f -`: `delete table …; table … { body }` in one
 * transaction). Its name is `weft-<owner>` or starts with `weft-<owner>-`.
 */
export interface NftTable {
  readonly family: 'ip' | 'ip6' | 'inet' | 'arp' | 'bridge' | 'netdev';
  readonly name: string;
  /** Everything between the table's braces, in nft syntax: sets, maps, chains and their rules. */
  readonly body: string;
  /**
   * Elements of the body's named sets and maps, by set name, written as nft lists them (`KEY` in a set,
   * `KEY : VALUE` in a map: `7 : 0x00010000`). Unlike the body, they change element by element (`delete element`,
   * `add element` in one transaction): a 65,537-bucket map whose 500 buckets move is 500 elements written, not a new
   * table. Drift is looked for in the body (the table's listing without elements); elements are as weft wrote them.
   */
  readonly elements?: Readonly<Record<string, readonly string[]>>;
  /** Named counters (`counter NAME`), added and removed one by one like elements; their values are not state. */
  readonly counters?: readonly string[];
}

/** A named nftables counter's values. */
export interface NftCounter {
  readonly packets: number;
  readonly bytes: number;
}

/** The object of a `set` change of an nftables table whose body stays: the elements and counters that change. */
export interface NftElementChange {
  readonly family: NftTable['family'];
  readonly name: string;
  /** Per set: elements to add (a map's element whose value changes is removed by key and added again). */
  readonly add: Readonly<Record<string, readonly string[]>>;
  /** Per set: the keys of elements to remove. */
  readonly remove: Readonly<Record<string, readonly string[]>>;
  readonly addCounters: readonly string[];
  readonly removeCounters: readonly string[];
}

/** What one owner wants in a namespace. Absent lists mean empty. */
export interface DesiredState {
  readonly links?: readonly Link[];
  readonly addresses?: readonly Address[];
  readonly routes?: readonly Route[];
  readonly mplsRoutes?: readonly MplsRoute[];
  readonly rules?: readonly Rule[];
  readonly neighbours?: readonly Neighbour[];
  readonly fdb?: readonly FdbEntry[];
  readonly sysctls?: readonly Sysctl[];
  readonly wireguard?: readonly WireGuardDevice[];
  readonly nftables?: readonly NftTable[];
}

/**
 * What marks an object as an owner's: links by name prefix, routes by route protocol number, rules by priority
 * range; addresses, neighbour and FDB entries by being on an owned link. Objects outside are never touched.
 */
export interface KernelOwner {
  /** The plugin's name (for logs, metrics and errors). */
  readonly name: string;
  /**
   * Every owned link's name starts with this (1-8 characters). Absent: the owner owns no links (a plugin that only
   * routes), and so no addresses, neighbours or FDB entries either.
   */
  readonly linkPrefix?: string;
  /** The route `proto` number marking the owner's routes, 100-199 (weft's range; see docs). */
  readonly routeProtocol: number;
  /** Inclusive range of rule priorities the owner manages; none when absent. */
  readonly rulePriorities?: readonly [number, number];
}

/** Kinds of kernel object, as changes and metrics name them. */
export type ObjectKind = 'link' | 'address' | 'route' | 'mpls' | 'rule' | 'neighbour' | 'fdb' | 'sysctl' | 'wireguard' | 'wgpeer' | 'nftables';

/** One step of an apply. `replace` changes an object in place; `set` changes a link's mutable attributes. */
export interface Change {
  readonly op: 'add' | 'replace' | 'set' | 'delete';
  readonly kind: ObjectKind;
  /** Human-readable identity, e.g. `route 198.18.0.0/24 table 254 metric 0`. */
  readonly id: string;
  /** The desired object for add/replace/set, the observed one for delete. */
  readonly object: Link | Address | Route | MplsRoute | Rule | Neighbour | FdbEntry | Sysctl | WireGuardDevice | (WireGuardPeer & { readonly device: string }) | NftTable | NftElementChange;
  /** For `set`: which attributes differ (an nftables table: per set, how many elements change). */
  readonly fields?: readonly string[];
}
