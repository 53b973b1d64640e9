import { isIPv4, isIPv6 } from 'node:net';

/** An address family as iproute2 numbers it. */
export type Family = 4 | 6;

/** The longest text a remembered parse keeps: an IPv6 address with an IPv4 tail and a prefix is 49 characters. */
const MEMO_KEY_MAX = 64;
/** How many texts a remembered parse keeps in each of its two generations (5,000 nodes: ~20,000 addresses). */
const MEMO_SIZE = 16_384;

/**
 * A pure parse of short texts, remembered: a reconcile parses the same peers' addresses every time (a no-op
 * reconcile of a 3-node mesh spent a tenth of its CPU here). Results are frozen or primitive; longer texts (never an
 * address) are parsed each time. Two generations bound it whatever the input: when the young one is full it becomes
 * the old one and the old one is dropped; a text found in the old one moves to the young one.
 */
function remembered<T>(parse: (text: string) => T): (text: string) => T {
  let young = new Map<string, T>();
  let old = new Map<string, T>();
  const keep = (text: string, value: T) => {
    if (young.size >= MEMO_SIZE) {
      old = young;
      young = new Map();
    }
    young.set(text, value);
  };
  return (text) => {
    if (text.length > MEMO_KEY_MAX) return parse(text);
    const hit = young.get(text);
    if (hit !== undefined || young.has(text)) return hit as T;
    const value = old.has(text) ? (old.get(text) as T) : parse(text);
    keep(text, value);
    return value;
  };
}

function v6Groups(text: string): number[] | undefined {
  if (!isIPv6(text)) return undefined;
  let s = text;
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = (v4[1] as string).split('.').map(Number);
    s = `${s.slice(0, v4.index)}${(((b[0] as number) << 8) | (b[1] as number)).toString(16)}:${(((b[2] as number) << 8) | (b[3] as number)).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':').map((g) => parseInt(g, 16));
  if (tail === undefined) return h;
  const t = tail === '' ? [] : tail.split(':').map((g) => parseInt(g, 16));
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

/** RFC 5952 text of an IPv6 address: lowercase, longest zero run (of 2+) compressed. */
function formatV6(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i += 1;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j += 1;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** The canonical text of an IP address (IPv6 as RFC 5952), or undefined when `text` is none. */
export const canonicalIP: (text: string) => string | undefined = remembered((text) => {
  if (isIPv4(text)) return text.split('.').map(Number).join('.');
  const g = v6Groups(text);
  return g ? formatV6(g) : undefined;
});

/** The family of an address, or undefined. */
export function familyOf(text: string): Family | undefined {
  // Through the remembered parse: node:net's IPv6 pattern costs microseconds per call, and planners ask per node.
  if (canonicalIP(text) === undefined) return undefined;
  return text.includes(':') ? 6 : 4;
}

const toBits: (address: string) => { readonly bits: bigint; readonly family: Family } | undefined = remembered((address) => {
  if (isIPv4(address)) {
    return Object.freeze({ bits: address.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n), family: 4 as const });
  }
  const g = v6Groups(address);
  if (!g) return undefined;
  return Object.freeze({ bits: g.reduce((acc, x) => (acc << 16n) | BigInt(x), 0n), family: 6 as const });
});

function fromBits(bits: bigint, family: Family): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => Number((bits >> s) & 255n)).join('.');
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((bits >> BigInt(i * 16)) & 0xffffn));
  return formatV6(groups);
}

/** A parsed `address/prefix`. */
export interface Prefix {
  readonly address: string;
  readonly prefix: number;
  readonly family: Family;
}

/** Parses `address/prefix` (or a bare address as a host prefix when `hostDefault`), canonicalising the address. */
export function parsePrefix(text: string, options: { hostDefault?: boolean } = {}): Prefix | undefined {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const family = familyOf(addr);
  if (!family) return undefined;
  let prefix = family === 4 ? 32 : 128;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > prefix) return undefined;
    prefix = Number(p);
  } else if (!options.hostDefault) {
    return undefined;
  }
  return { address: canonicalIP(addr) as string, prefix, family };
}

/** The network a prefix lies in (`192.0.2.7/24` → `192.0.2.0/24`). */
export function networkOf(p: Prefix): string {
  if (p.family === 4) {
    // 32-bit arithmetic: this runs for every route and allowed IP of a large desired state.
    const o = p.address.split('.').map(Number) as [number, number, number, number];
    const n = (((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0) & (p.prefix === 0 ? 0 : (0xffffffff << (32 - p.prefix)) >>> 0);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${p.prefix}`;
  }
  const { bits, family } = toBits(p.address) as { bits: bigint; family: Family };
  const width = family === 4 ? 32 : 128;
  const mask = p.prefix === 0 ? 0n : ((1n << BigInt(p.prefix)) - 1n) << BigInt(width - p.prefix);
  return `${fromBits(bits & mask, family)}/${p.prefix}`;
}

/** An IP network with its first address as a number: what plugins compute address plans with. */
export interface Network {
  readonly family: Family;
  /** The network's first address (host bits cleared). */
  readonly base: bigint;
  readonly prefix: number;
}

const width = (family: Family) => (family === 4 ? 32 : 128);

/** An address as a number with its family; undefined when `text` is not an address. */
export function ipToBigInt(text: string): { family: Family; value: bigint } | undefined {
  const b = toBits(text);
  return b ? { family: b.family, value: b.bits } : undefined;
}

/** A number as the canonical text of an address (IPv6 as RFC 5952). */
export function bigIntToIp(value: bigint, family: Family): string {
  return fromBits(value, family);
}

/** Parses `address/prefix` into a {@link Network} (host bits cleared, frozen); undefined when invalid. */
export const parseNetwork: (text: string) => Network | undefined = remembered((text) => {
  const p = parsePrefix(text);
  if (!p) return undefined;
  const host = BigInt(width(p.family) - p.prefix);
  return Object.freeze({ family: p.family, base: ((toBits(p.address) as { bits: bigint }).bits >> host) << host, prefix: p.prefix });
});

/** `198.18.1.0/24`: the canonical text of a network. */
export function formatNetwork(n: Network): string {
  return `${fromBits(n.base, n.family)}/${String(n.prefix)}`;
}

/** The canonical text of a CIDR (address canonical, host bits cleared); undefined when invalid. */
export const canonicalNetwork: (text: string) => string | undefined = remembered((text) => {
  const n = parseNetwork(text);
  return n ? formatNetwork(n) : undefined;
});

/** How many addresses a network holds. */
export function networkSize(n: Network): bigint {
  return 1n << BigInt(width(n.family) - n.prefix);
}

/** Whether `ip` lies in `n`. */
export function networkContains(n: Network, ip: string): boolean {
  return offsetOf(n, ip) !== undefined;
}

/** Whether two networks share an address. */
export function networksOverlap(a: Network, b: Network): boolean {
  return a.family === b.family && a.base < b.base + networkSize(b) && b.base < a.base + networkSize(a);
}

/** The address at `offset` in `n` (0 is the network's first address). */
export function addressAt(n: Network, offset: bigint): string {
  return fromBits(n.base + offset, n.family);
}

/** The offset of `ip` in `n`; undefined when outside it (or another family). */
export function offsetOf(n: Network, ip: string): bigint | undefined {
  const a = toBits(ip);
  if (!a || a.family !== n.family || a.bits < n.base || a.bits >= n.base + networkSize(n)) return undefined;
  return a.bits - n.base;
}

/** The host network of an address: `/32` or `/128`. */
export function hostNetwork(ip: string): string {
  return `${ip}/${familyOf(ip) === 6 ? '128' : '32'}`;
}

/** `host:port`, an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number): string {
  return familyOf(host) === 6 ? `[${host}]:${String(port)}` : `${host}:${String(port)}`;
}

/** Whether `text` is a MAC address (`aa:bb:cc:dd:ee:ff`). */
export function isMAC(text: string): boolean {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text);
}
