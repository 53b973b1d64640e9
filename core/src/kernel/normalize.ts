import { WeftError } from '../errors.js';
import { canonicalIP, type Family, familyOf, isMAC, networkOf, parsePrefix } from './ip.js';
import type { Address, DesiredState, FdbEntry, KernelOwner, Link, Neighbour, NftTable, Route, Rule, Sysctl, WireGuardDevice, WireGuardPeer } from './model.js';

/*
 * Desired objects are validated and brought into one canonical form (defaults filled, addresses canonical), so that
 * the diff compares like with like and nothing unchecked ever reaches a command line. Observed objects read from
 * the kernel are brought into the same form by the readers.
 */

/** A link with its defaults filled. */
export type NLink = Link & { readonly up: boolean };
/** A route in canonical form. */
export interface NRoute {
  readonly family: Family;
  readonly dst: string;
  readonly table: number;
  readonly metric: number;
  readonly dev?: string;
  readonly via?: string;
  readonly src?: string;
  readonly onlink: boolean;
  readonly mpls: readonly number[];
  readonly ipEncap?: { readonly dst: string; readonly ttl?: number };
}
/** An MPLS route in canonical form (`as` empty to pop). */
export interface NMplsRoute {
  readonly label: number;
  readonly dev?: string;
  readonly via?: string;
  readonly as: readonly number[];
}
/** A rule in canonical form (`from`/`to` absent mean "all"). */
export interface NRule {
  readonly family: Family;
  readonly priority: number;
  readonly table: number;
  readonly fwmark?: number;
  readonly fwmask?: number;
  readonly from?: string;
  readonly to?: string;
}

/** A WireGuard peer in canonical form: allowed IPs sorted, keepalive 0 when off. */
export interface NPeer {
  readonly publicKey: string;
  readonly presharedKey?: string;
  readonly endpoint?: string;
  readonly allowedIPs: readonly string[];
  readonly persistentKeepalive: number;
}
/** A WireGuard device in canonical form: peers sorted by public key, fwmark 0 when off. */
export interface NWireGuard {
  readonly name: string;
  readonly privateKey: string;
  readonly listenPort?: number;
  readonly fwmark: number;
  readonly peers: readonly NPeer[];
}

/** A desired state in canonical form. */
export interface NormalState {
  readonly links: readonly NLink[];
  readonly addresses: readonly Address[];
  readonly routes: readonly NRoute[];
  readonly mplsRoutes: readonly NMplsRoute[];
  readonly rules: readonly NRule[];
  readonly neighbours: readonly Neighbour[];
  readonly fdb: readonly FdbEntry[];
  readonly sysctls: readonly Sysctl[];
  readonly wireguard: readonly NWireGuard[];
  readonly nftables: readonly NftTable[];
}

/** Thrown before any command runs when a desired state holds a bad value; `problems` lists every one. */
export class KernelInputError extends WeftError {
  constructor(
    readonly owner: string,
    readonly problems: readonly string[],
  ) {
    super('WEFT_KERNEL_INPUT', `${owner}: refused desired state:\n  ${problems.join('\n  ')}`);
  }
}

const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;
const SYSCTL_KEY = /^[a-z0-9_]+(\.[A-Za-z0-9_/-]+)+$/;
const SYSCTL_VALUE = /^[A-Za-z0-9._:/-]+( [A-Za-z0-9._:/-]+)*$/;
const U32 = 0xffffffff;

/** Whether `name` is a valid interface name (1-15 characters, no slash, space or leading dash). */
export function isInterfaceName(name: unknown): name is string {
  return typeof name === 'string' && IFNAME.test(name) && name !== '.' && name !== '..';
}

const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** Whether `name` is a valid network namespace name (`ip netns`): up to 64 of A-Z a-z 0-9 _ . -. */
export function isNetnsName(name: unknown): name is string {
  return typeof name === 'string' && NETNS_NAME.test(name) && name !== '.' && name !== '..';
}

/** Validates an owner declaration. */
export function checkOwner(owner: KernelOwner): void {
  const problems: string[] = [];
  if (owner.linkPrefix !== undefined && !/^[a-z][a-z0-9-]{0,7}$/.test(owner.linkPrefix)) problems.push(`linkPrefix ${JSON.stringify(owner.linkPrefix)}: expected 1-8 of a-z, 0-9, -`);
  if (!Number.isInteger(owner.routeProtocol) || owner.routeProtocol < 100 || owner.routeProtocol > 199) {
    problems.push(`routeProtocol ${String(owner.routeProtocol)}: expected an integer 100-199 (weft's range)`);
  }
  const r = owner.rulePriorities;
  if (r && !(Number.isInteger(r[0]) && Number.isInteger(r[1]) && r[0] >= 1 && r[0] <= r[1] && r[1] < 32766)) {
    problems.push(`rulePriorities [${r.join(', ')}]: expected [min, max] with 1 <= min <= max < 32766`);
  }
  if (problems.length > 0) throw new KernelInputError(`owner ${owner.name}`, problems);
}

/** Whether a link of this name is the owner's: it has a link prefix and the name starts with it. */
export function ownsLink(owner: KernelOwner, name: string): boolean {
  return owner.linkPrefix !== undefined && name.startsWith(owner.linkPrefix);
}

/** Pairs of plugins whose kernel ownership overlaps, as messages; empty when every owner is apart. */
export function ownershipConflicts(owners: readonly KernelOwner[]): { plugin: string; message: string }[] {
  const out: { plugin: string; message: string }[] = [];
  for (const [i, a] of owners.entries()) {
    for (const b of owners.slice(i + 1)) {
      if (a.linkPrefix !== undefined && b.linkPrefix !== undefined && (a.linkPrefix.startsWith(b.linkPrefix) || b.linkPrefix.startsWith(a.linkPrefix))) {
        out.push({ plugin: b.name, message: `link prefix "${b.linkPrefix}" overlaps plugin "${a.name}"'s "${a.linkPrefix}"` });
      }
      if (a.routeProtocol === b.routeProtocol) out.push({ plugin: b.name, message: `route protocol ${b.routeProtocol} is also plugin "${a.name}"'s` });
      const [ra, rb] = [a.rulePriorities, b.rulePriorities];
      if (ra && rb && ra[0] <= rb[1] && rb[0] <= ra[1]) {
        out.push({ plugin: b.name, message: `rule priorities ${rb[0]}-${rb[1]} overlap plugin "${a.name}"'s ${ra[0]}-${ra[1]}` });
      }
    }
  }
  return out;
}

class Checker {
  readonly problems: string[] = [];

  constructor(readonly owner: KernelOwner) {}

  fail(what: string, message: string): void {
    this.problems.push(`${what}: ${message}`);
  }

  ifname(what: string, field: string, value: unknown, owned: boolean): string | undefined {
    if (!isInterfaceName(value)) {
      this.fail(what, `${field} ${JSON.stringify(value)}: expected an interface name (1-15 of A-Z a-z 0-9 _ . -, not starting with - or .)`);
      return undefined;
    }
    if (owned && this.owner.linkPrefix === undefined) this.fail(what, `${field} "${value}": the owner declares no link prefix, so it owns no links`);
    else if (owned && !ownsLink(this.owner, value)) this.fail(what, `${field} "${value}" must start with the owner's link prefix "${this.owner.linkPrefix ?? ''}"`);
    return value;
  }

  int(what: string, field: string, value: unknown, min: number, max: number): number | undefined {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(what, `${field} ${JSON.stringify(value)}: expected an integer ${min}-${max}`);
      return undefined;
    }
    return value;
  }

  ip(what: string, field: string, value: unknown, family?: Family): string | undefined {
    const canonical = typeof value === 'string' ? canonicalIP(value) : undefined;
    if (canonical === undefined || (family !== undefined && familyOf(canonical) !== family)) {
      this.fail(what, `${field} ${JSON.stringify(value)}: expected an IPv${family ?? '4 or IPv6'} address`);
      return undefined;
    }
    return canonical;
  }

  network(what: string, field: string, value: unknown): { text: string; family: Family } | undefined {
    const p = typeof value === 'string' ? parsePrefix(value, { hostDefault: true }) : undefined;
    if (!p) {
      this.fail(what, `${field} ${JSON.stringify(value)}: expected a network in CIDR notation`);
      return undefined;
    }
    const net = networkOf(p);
    if (net !== `${p.address}/${p.prefix}`) {
      this.fail(what, `${field} ${JSON.stringify(value)} has host bits set; the network is ${net}`);
      return undefined;
    }
    return { text: net, family: p.family };
  }

  mac(what: string, field: string, value: unknown): string | undefined {
    if (typeof value !== 'string' || !isMAC(value)) {
      this.fail(what, `${field} ${JSON.stringify(value)}: expected a MAC address like 02:00:00:00:00:01`);
      return undefined;
    }
    return value.toLowerCase();
  }
}

function normalizeLink(c: Checker, link: Link): NLink | undefined {
  const what = `link ${JSON.stringify(link.name)}`;
  const before = c.problems.length;
  c.ifname(what, 'name', link.name, true);
  if (link.mtu !== undefined) c.int(what, 'mtu', link.mtu, 68, 65535);
  if (link.master !== undefined) c.ifname(what, 'master', link.master, false);
  if (link.netns !== undefined && !isNetnsName(link.netns)) c.fail(what, `netns ${JSON.stringify(link.netns)}: expected a namespace name`);
  if (link.netns !== undefined && link.master !== undefined) c.fail(what, 'a link moved to another namespace cannot have a master here');
  const address = link.address === undefined ? undefined : c.mac(what, 'address', link.address);
  const base = { ...link, up: link.up ?? true, ...(address ? { address } : {}) };
  switch (link.kind) {
    case 'bridge':
    case 'dummy':
    case 'wireguard':
      break;
    case 'veth':
      c.ifname(what, 'peer', link.peer, link.peerNetns === undefined);
      if (link.peerNetns !== undefined && !isNetnsName(link.peerNetns)) c.fail(what, `peerNetns ${JSON.stringify(link.peerNetns)}: expected a namespace name`);
      break;
    case 'vxlan': {
      c.int(what, 'vni', link.vni, 0, 0xffffff);
      const port = c.int(what, 'port', link.port ?? 4789, 1, 65535);
      const local = link.local === undefined ? undefined : c.ip(what, 'local', link.local);
      if (link.dev !== undefined) c.ifname(what, 'dev', link.dev, false);
      if (c.problems.length > before) return undefined;
      return { ...base, kind: 'vxlan', port, learning: link.learning ?? false, ...(local ? { local } : {}) } as NLink;
    }
    case 'gre':
    case 'ip6gre':
    case 'ipip': {
      const family = link.kind === 'ip6gre' ? 6 : 4;
      if ('external' in link && link.external === true) {
        if (link.remote !== undefined || link.local !== undefined || link.key !== undefined) c.fail(what, 'external: a device in metadata mode has no remote, local or key (each route says where)');
        if (link.ttl !== undefined) c.int(what, 'ttl', link.ttl, 0, 255);
        if (c.problems.length > before) return undefined;
        return { ...base, external: true } as NLink;
      }
      if ('external' in link && link.external !== undefined && link.external !== false) c.fail(what, 'external: expected true or false');
      if (link.remote === undefined) c.fail(what, 'remote: required (or external: true)');
      const remote = link.remote === undefined ? undefined : c.ip(what, 'remote', link.remote, family);
      const local = link.local === undefined ? undefined : c.ip(what, 'local', link.local, family);
      if ('key' in link && link.key !== undefined) c.int(what, 'key', link.key, 0, U32);
      if (link.ttl !== undefined) c.int(what, 'ttl', link.ttl, 0, 255);
      if (c.problems.length > before) return undefined;
      const { external: _external, ...rest } = base as typeof base & { external?: boolean };
      return { ...rest, remote, ...(local ? { local } : {}) } as NLink;
    }
    default:
      c.fail(what, `kind ${JSON.stringify((link as { kind: unknown }).kind)}: expected one of bridge, dummy, veth, vxlan, gre, ip6gre, ipip, wireguard`);
  }
  return c.problems.length > before ? undefined : (base);
}

function normalizeRoute(c: Checker, route: Route): NRoute | undefined {
  const what = `route ${JSON.stringify(route.dst)}`;
  const before = c.problems.length;
  const dstText = route.dst === 'default' ? '0.0.0.0/0' : route.dst === 'default6' ? '::/0' : route.dst;
  const dst = c.network(what, 'dst', dstText);
  const family = dst?.family;
  const table = c.int(what, 'table', route.table ?? 254, 1, U32 - 1);
  const metric = c.int(what, 'metric', route.metric ?? (family === 6 ? 1024 : 0), 0, U32);
  const via = route.via === undefined ? undefined : c.ip(what, 'via', route.via, family);
  const src = route.src === undefined ? undefined : c.ip(what, 'src', route.src, family);
  if (route.dev !== undefined) c.ifname(what, 'dev', route.dev, false);
  if (route.dev === undefined && route.via === undefined) c.fail(what, 'needs dev or via');
  const mpls = route.mpls ?? [];
  if (!Array.isArray(mpls) || mpls.length > 8) c.fail(what, 'mpls: expected a label stack of at most 8 labels');
  else mpls.forEach((l, i) => c.int(what, `mpls[${i}]`, l, 16, 1_048_575));
  let ipEncap: NRoute['ipEncap'];
  if (route.ipEncap !== undefined) {
    const e = route.ipEncap as { dst?: unknown; ttl?: unknown } | null;
    let tunnelDst: string | undefined;
    if (typeof e?.dst === 'string') tunnelDst = c.ip(what, 'ipEncap.dst', e.dst);
    else c.fail(what, 'ipEncap.dst: expected an IP address');
    if (e?.ttl !== undefined) c.int(what, 'ipEncap.ttl', e.ttl, 1, 255);
    if (route.dev === undefined) c.fail(what, 'ipEncap: needs dev (a GRE device in metadata mode)');
    if (mpls.length > 0) c.fail(what, 'ipEncap: not with mpls');
    if (tunnelDst) ipEncap = { dst: tunnelDst, ...(typeof e?.ttl === 'number' ? { ttl: e.ttl } : {}) };
  }
  if (c.problems.length > before || !dst || table === undefined || metric === undefined) return undefined;
  return {
    family: dst.family,
    dst: dst.text,
    table,
    metric,
    onlink: route.onlink ?? false,
    mpls: [...mpls],
    ...(ipEncap ? { ipEncap } : {}),
    ...(route.dev !== undefined ? { dev: route.dev } : {}),
    ...(via ? { via } : {}),
    ...(src ? { src } : {}),
  };
}

function normalizeRule(c: Checker, rule: Rule): NRule | undefined {
  const what = `rule priority ${JSON.stringify(rule.priority)}`;
  const before = c.problems.length;
  const [min, max] = c.owner.rulePriorities ?? [0, -1];
  const priority = c.int(what, 'priority', rule.priority, 1, 32765);
  if (priority !== undefined && (priority < min || priority > max)) {
    c.fail(what, c.owner.rulePriorities ? `priority outside the owner's range ${min}-${max}` : 'this owner declares no rule priority range');
  }
  const family: Family = rule.family ?? 4;
  if (family !== 4 && family !== 6) c.fail(what, `family ${JSON.stringify(rule.family)}: expected 4 or 6`);
  const table = c.int(what, 'table', rule.table, 1, U32 - 1);
  const fwmark = rule.fwmark === undefined ? undefined : c.int(what, 'fwmark', rule.fwmark, 0, U32);
  const fwmask = rule.fwmask === undefined ? (fwmark === undefined ? undefined : U32) : c.int(what, 'fwmask', rule.fwmask, 0, U32);
  const from = rule.from === undefined ? undefined : c.network(what, 'from', rule.from);
  const to = rule.to === undefined ? undefined : c.network(what, 'to', rule.to);
  for (const [f, n] of [['from', from], ['to', to]] as const) if (n && n.family !== family) c.fail(what, `${f} is not IPv${family}`);
  if (c.problems.length > before || priority === undefined || table === undefined) return undefined;
  return {
    family,
    priority,
    table,
    ...(fwmark !== undefined ? { fwmark, fwmask } : {}),
    ...(from ? { from: from.text } : {}),
    ...(to ? { to: to.text } : {}),
  };
}

/**
 * Validates a desired state for `owner` and brings it into canonical form. Throws {@link KernelInputError} naming
 * every bad value (object and field) before anything touches the kernel.
 */
export function normalizeDesired(owner: KernelOwner, desired: DesiredState): NormalState {
  const c = new Checker(owner);
  const links = (desired.links ?? []).map((l) => normalizeLink(c, l)).filter((l): l is NLink => l !== undefined);
  const owned = new Set(links.filter((l) => l.netns === undefined).map((l) => l.name));
  const moved = new Map(links.filter((l) => l.netns !== undefined).map((l) => [l.name, l.netns as string]));
  const onOwnedLink = (what: string, dev: unknown) => {
    if (c.ifname(what, 'dev', dev, true) === undefined) return;
    const elsewhere = moved.get(dev as string);
    if (elsewhere !== undefined) c.fail(what, `link "${String(dev)}" lives in netns ${elsewhere}: a driver bound to that namespace manages what is on it`);
    else if (!owned.has(dev as string)) c.fail(what, `dev "${String(dev)}" is not a link of this desired state`);
  };

  const addresses: Address[] = [];
  for (const a of desired.addresses ?? []) {
    const what = `address ${JSON.stringify(a.address)}`;
    onOwnedLink(what, a.dev);
    const p = typeof a.address === 'string' ? parsePrefix(a.address) : undefined;
    if (!p) c.fail(what, 'expected address/prefix like 192.0.2.1/24 or fd00::1/64');
    else addresses.push({ dev: a.dev, address: `${p.address}/${p.prefix}` });
  }
  const routes = (desired.routes ?? []).map((r) => normalizeRoute(c, r)).filter((r): r is NRoute => r !== undefined);
  const mplsRoutes: NMplsRoute[] = [];
  for (const m of desired.mplsRoutes ?? []) {
    const what = `mpls route ${JSON.stringify(m.label)}`;
    const before = c.problems.length;
    c.int(what, 'label', m.label, 16, 1_048_575);
    if (m.dev !== undefined) c.ifname(what, 'dev', m.dev, false);
    const via = m.via === undefined ? undefined : c.ip(what, 'via', m.via);
    const stack = m.as ?? [];
    if (!Array.isArray(stack) || stack.length > 8) c.fail(what, 'as: expected a label stack of at most 8 labels');
    else stack.forEach((l, i) => c.int(what, `as[${i}]`, l, 16, 1_048_575));
    if (m.dev === undefined && via === undefined) c.fail(what, 'needs dev (pop and deliver) or via (swap and forward)');
    if (c.problems.length === before) mplsRoutes.push({ label: m.label, as: [...stack], ...(m.dev !== undefined ? { dev: m.dev } : {}), ...(via ? { via } : {}) });
  }
  duplicates(c, 'mpls route', mplsRoutes, (m) => String(m.label));
  const rules = (desired.rules ?? []).map((r) => normalizeRule(c, r)).filter((r): r is NRule => r !== undefined);
  const neighbours: Neighbour[] = [];
  for (const n of desired.neighbours ?? []) {
    const what = `neighbour ${JSON.stringify(n.address)}`;
    onOwnedLink(what, n.dev);
    const address = c.ip(what, 'address', n.address);
    const lladdr = c.mac(what, 'lladdr', n.lladdr);
    if (address && lladdr) neighbours.push({ dev: n.dev, address, lladdr });
  }
  const fdb: FdbEntry[] = [];
  for (const f of desired.fdb ?? []) {
    const what = `fdb ${JSON.stringify(f.lladdr)}`;
    onOwnedLink(what, f.dev);
    const lladdr = c.mac(what, 'lladdr', f.lladdr);
    const dst = c.ip(what, 'dst', f.dst);
    if (lladdr && dst) fdb.push({ dev: f.dev, lladdr, dst });
  }
  const sysctls: Sysctl[] = [];
  for (const s of desired.sysctls ?? []) {
    const what = `sysctl ${JSON.stringify(s.key)}`;
    if (typeof s.key !== 'string' || !SYSCTL_KEY.test(s.key) || s.key.includes('..')) c.fail(what, 'expected a key like net.ipv4.ip_forward');
    else if (typeof s.value !== 'string' || !SYSCTL_VALUE.test(s.value)) c.fail(what, `value ${JSON.stringify(s.value)}: expected words of A-Z a-z 0-9 . _ : / - separated by single spaces`);
    else sysctls.push({ key: s.key, value: s.value });
  }

  const wireguard = (desired.wireguard ?? []).map((d) => normalizeWireGuard(c, d, links)).filter((d): d is NWireGuard => d !== undefined);

  const nftables: NftTable[] = [];
  for (const t of desired.nftables ?? []) {
    const what = `nftables table ${JSON.stringify(t.name)}`;
    const problem = nftProblem(owner, t);
    const dynamic = nftDynamicProblems(t);
    for (const p of dynamic) c.fail(what, p);
    if (problem) c.fail(what, problem);
    else if (dynamic.length === 0) {
      const elements = Object.fromEntries(Object.entries(t.elements ?? {}).map(([k, v]) => [k, [...new Set(v)].sort()] as const).filter(([, v]) => v.length > 0));
      const counters = [...new Set(t.counters ?? [])].sort();
      nftables.push({ family: t.family, name: t.name, body: t.body.trim(), ...(Object.keys(elements).length > 0 ? { elements } : {}), ...(counters.length > 0 ? { counters } : {}) });
    }
  }
  duplicates(c, 'nftables table', nftables, (t) => `${t.family} ${t.name}`);

  duplicates(c, 'link', links, (l) => l.name);
  duplicates(c, 'wireguard device', wireguard, (d) => d.name);
  duplicates(c, 'address', addresses, (a) => `${a.dev} ${a.address}`);
  duplicates(c, 'route', routes, routeKey);
  duplicates(c, 'rule', rules, ruleKey);
  duplicates(c, 'neighbour', neighbours, (n) => `${n.dev} ${n.address}`);
  duplicates(c, 'sysctl', sysctls, (s) => s.key);
  if (c.problems.length > 0) throw new KernelInputError(owner.name, c.problems);
  return { links, addresses, routes, mplsRoutes, rules, neighbours, fdb, sysctls, wireguard, nftables };
}

const NFT_FAMILIES = new Set(['ip', 'ip6', 'inet', 'arp', 'bridge', 'netdev']);
/** Statements that reach outside a table; a table body never holds them. */
const NFT_OUTSIDE = /^\s*(table|include|flush|delete|destroy|reset|rename|define|add\s+table|create\s+table|list|monitor|export|import)\b/;

/** The name prefix of an owner's nftables tables. */
export function nftPrefix(owner: KernelOwner): string {
  return `weft-${owner.name}`;
}

/** Why an nftables table cannot be the owner's, or undefined when it can. */
function nftProblem(owner: KernelOwner, t: NftTable): string | undefined {
  if (!NFT_FAMILIES.has(t.family)) return `family ${JSON.stringify(t.family)}: expected one of ${[...NFT_FAMILIES].join(', ')}`;
  const prefix = nftPrefix(owner);
  if (typeof t.name !== 'string' || !(t.name === prefix || (t.name.startsWith(`${prefix}-`) && /^[A-Za-z0-9_-]{1,64}$/.test(t.name)))) {
    return `name must be "${prefix}" or start with "${prefix}-" (letters, digits, _ and -)`;
  }
  if (typeof t.body !== 'string' || t.body.includes('\0')) return 'body: expected nft text';
  let depth = 0;
  for (const line of t.body.split('\n')) {
    if (depth === 0 && NFT_OUTSIDE.test(line)) return `body: ${JSON.stringify(line.trim())} reaches outside the table`;
    for (const ch of line.replace(/"[^"]*"/g, '').replace(/#.*$/, '')) {
      if (ch === '{') depth += 1;
      if (ch === '}') depth -= 1;
      if (depth < 0) return 'body: unbalanced braces';
    }
  }
  return depth === 0 ? undefined : 'body: unbalanced braces';
}

const NFT_OBJECT_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,31}$/;
/** An element as nft lists it: a key, or `KEY : VALUE`; addresses, numbers, marks, quoted names, concatenations. */
const NFT_ELEMENT = /^[A-Za-z0-9_.:/-]+(?: \. [A-Za-z0-9_.:/-]+)*(?: : (?:[A-Za-z0-9_.:/-]+|"[A-Za-z0-9_]{1,32}"))?$/;
/** At most this many elements per set and counters per table. */
export const NFT_MAX_ELEMENTS = 1_048_576;

/** What is wrong with a table's elements and counters (empty when nothing). */
function nftDynamicProblems(t: NftTable): string[] {
  const problems: string[] = [];
  if (t.elements !== undefined) {
    if (t.elements === null || typeof t.elements !== 'object' || Array.isArray(t.elements)) return ['elements: expected a map of set name to a list of elements'];
    for (const [set, list] of Object.entries(t.elements as Record<string, unknown>)) {
      if (!NFT_OBJECT_NAME.test(set)) problems.push(`elements: set name ${JSON.stringify(set)}: expected letters, digits and _ (at most 32)`);
      if (!Array.isArray(list)) problems.push(`elements.${set}: expected a list`);
      else if (list.length > NFT_MAX_ELEMENTS) problems.push(`elements.${set}: ${String(list.length)} elements, more than ${String(NFT_MAX_ELEMENTS)}`);
      else {
        const items = list as unknown[];
        const bad = items.find((e) => typeof e !== 'string' || e.length > 256 || !NFT_ELEMENT.test(e));
        if (bad !== undefined) problems.push(`elements.${set}: ${JSON.stringify(bad)} is not an element as nft lists one (KEY or KEY : VALUE)`);
        const keys = new Map<string, string>();
        for (const e of bad === undefined ? (items as string[]) : []) {
          const key = e.split(' : ')[0] as string;
          if (keys.has(key) && keys.get(key) !== e) {
            problems.push(`elements.${set}: key ${key} twice, with different values`);
            break;
          }
          keys.set(key, e);
        }
      }
    }
  }
  if (t.counters !== undefined) {
    const counters: unknown = t.counters;
    if (!Array.isArray(counters)) problems.push('counters: expected a list of names');
    else {
      const bad = (counters as unknown[]).find((n) => typeof n !== 'string' || !NFT_OBJECT_NAME.test(n));
      if (bad !== undefined) problems.push(`counters: ${JSON.stringify(bad)}: expected letters, digits and _ (at most 32)`);
      if (counters.length > NFT_MAX_ELEMENTS) problems.push(`counters: more than ${String(NFT_MAX_ELEMENTS)}`);
    }
  }
  return problems;
}

const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Whether `key` is a WireGuard key: base64 of 32 bytes. */
export function isWireGuardKey(key: unknown): key is string {
  return typeof key === 'string' && WG_KEY.test(key);
}

/** Canonical `ip:port` / `[ip6]:port`, or undefined. */
export function canonicalEndpoint(text: string): string | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) return undefined;
  const ip = canonicalIP((m[1] ?? m[2]) as string);
  if (!ip) return undefined;
  return familyOf(ip) === 6 ? `[${ip}]:${Number(m[3])}` : `${ip}:${Number(m[3])}`;
}

function normalizeWireGuard(c: Checker, d: WireGuardDevice, links: readonly NLink[]): NWireGuard | undefined {
  const what = `wireguard ${JSON.stringify(d.name)}`;
  const before = c.problems.length;
  if (!links.some((l) => l.name === d.name && l.kind === 'wireguard')) c.fail(what, `needs a link { kind: 'wireguard', name: ${JSON.stringify(d.name)} } in this desired state`);
  // Never echo a key that may be a real secret; say only what is wrong with it.
  if (!isWireGuardKey(d.privateKey)) c.fail(what, 'privateKey: expected a base64 WireGuard key (44 characters)');
  if (d.listenPort !== undefined) c.int(what, 'listenPort', d.listenPort, 1, 65535);
  const fwmark = d.fwmark === undefined ? 0 : c.int(what, 'fwmark', d.fwmark, 0, U32);
  const peers: NPeer[] = [];
  const list: readonly WireGuardPeer[] = Array.isArray(d.peers) ? d.peers : [];
  for (const [i, p] of list.entries()) {
    const pw = `${what} peer ${isWireGuardKey(p.publicKey) ? p.publicKey : `[${i}]`}`;
    if (!isWireGuardKey(p.publicKey)) c.fail(pw, `publicKey ${JSON.stringify(p.publicKey)}: expected a base64 WireGuard key (44 characters)`);
    if (p.presharedKey !== undefined && !isWireGuardKey(p.presharedKey)) c.fail(pw, 'presharedKey: expected a base64 WireGuard key (44 characters)');
    const endpoint = p.endpoint === undefined ? undefined : canonicalEndpoint(p.endpoint);
    if (p.endpoint !== undefined && endpoint === undefined) c.fail(pw, `endpoint ${JSON.stringify(p.endpoint)}: expected ip:port or [ipv6]:port`);
    const allowed: string[] = [];
    const allowedList: readonly string[] = Array.isArray(p.allowedIPs) ? p.allowedIPs : [];
    for (const a of allowedList) {
      const n = c.network(pw, 'allowedIPs', a);
      if (n) allowed.push(n.text);
    }
    const keepalive = p.persistentKeepalive === undefined ? 0 : c.int(pw, 'persistentKeepalive', p.persistentKeepalive, 0, 65535);
    peers.push({
      publicKey: p.publicKey,
      allowedIPs: [...new Set(allowed)].sort(),
      persistentKeepalive: keepalive ?? 0,
      ...(p.presharedKey !== undefined ? { presharedKey: p.presharedKey } : {}),
      ...(endpoint ? { endpoint } : {}),
    });
  }
  duplicates(c, `${what} peer`, peers, (p) => p.publicKey);
  if (c.problems.length > before) return undefined;
  return {
    name: d.name,
    privateKey: d.privateKey,
    fwmark: fwmark ?? 0,
    peers: peers.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1)),
    ...(d.listenPort !== undefined ? { listenPort: d.listenPort } : {}),
  };
}

function duplicates<T>(c: Checker, kind: string, items: readonly T[], key: (t: T) => string): void {
  const seen = new Set<string>();
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) c.fail(`${kind} ${k}`, 'appears twice');
    seen.add(k);
  }
}

/** The identity of a route in the kernel: family, table, destination and metric. */
export function routeKey(r: NRoute): string {
  return `${r.dst} table ${r.table} metric ${r.metric}`;
}

/** The identity of a rule: every selector. */
export function ruleKey(r: NRule): string {
  const mark = r.fwmark === undefined ? '' : ` fwmark 0x${r.fwmark.toString(16)}/0x${(r.fwmask ?? U32).toString(16)}`;
  return `ipv${r.family} priority ${r.priority}${mark}${r.from ? ` from ${r.from}` : ''}${r.to ? ` to ${r.to}` : ''} table ${r.table}`;
}
