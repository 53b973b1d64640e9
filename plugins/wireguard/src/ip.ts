import { isIP } from 'node:net';

/** An IP network, with its address as a number. */
export interface Net {
  readonly family: 4 | 6;
  readonly base: bigint;
  readonly prefix: number;
}

const bits = (family: 4 | 6) => (family === 4 ? 32 : 128);

/** An address as a number; undefined when not an IP address. */
export function ipToBigInt(text: string): { family: 4 | 6; value: bigint } | undefined {
  const family = isIP(text);
  if (family === 4) return { family, value: text.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
  if (family !== 6) return undefined;
  let t = text.toLowerCase();
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (v4) {
    const n = ipToBigInt(v4[1] as string)?.value ?? 0n;
    t = t.slice(0, -(v4[1] as string).length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = t.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const tl = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - tl.length).fill('0'), ...tl];
  return { family: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

/** A number as a canonical address (RFC 5952 for IPv6). */
export function bigIntToIp(value: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  // The longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The canonical form of an address; undefined when invalid. */
export function canonicalIp(text: string): string | undefined {
  const n = ipToBigInt(text);
  return n ? bigIntToIp(n.value, n.family) : undefined;
}

/** Parses a CIDR; the base is the network (host bits cleared). */
export function parseNet(text: string): Net | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = ipToBigInt(text.slice(0, slash));
  const p = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(p) || Number(p) > bits(ip.family)) return undefined;
  const prefix = Number(p);
  const host = bits(ip.family) - prefix;
  return { family: ip.family, base: (ip.value >> BigInt(host)) << BigInt(host), prefix };
}

/** `198.18.1.0/24` in canonical form (host bits cleared). */
export function formatNet(n: Net): string {
  return `${bigIntToIp(n.base, n.family)}/${String(n.prefix)}`;
}

/** The canonical CIDR of a text, undefined when invalid. */
export function canonicalNet(text: string): string | undefined {
  const n = parseNet(text);
  return n ? formatNet(n) : undefined;
}

/** How many addresses the network holds. */
export function netSize(n: Net): bigint {
  return 1n << BigInt(bits(n.family) - n.prefix);
}

/** Whether `ip` lies inside `n`. */
export function netContains(n: Net, ip: string): boolean {
  const a = ipToBigInt(ip);
  return a !== undefined && a.family === n.family && a.value >= n.base && a.value < n.base + netSize(n);
}

/** Whether two networks share any address. */
export function netsOverlap(a: Net, b: Net): boolean {
  if (a.family !== b.family) return false;
  return a.base < b.base + netSize(b) && b.base < a.base + netSize(a);
}

/** The address at `offset` inside `n`. */
export function addressAt(n: Net, offset: bigint): string {
  return bigIntToIp(n.base + offset, n.family);
}

/** The offset of `ip` inside `n`, undefined when outside. */
export function offsetOf(n: Net, ip: string): bigint | undefined {
  const a = ipToBigInt(ip);
  if (!a || a.family !== n.family || a.value < n.base || a.value >= n.base + netSize(n)) return undefined;
  return a.value - n.base;
}

/** The host route of an address: `/32` or `/128`. */
export function hostNet(ip: string): string {
  return `${ip}/${isIP(ip) === 6 ? '128' : '32'}`;
}

/** `host:port`, with an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${String(port)}` : `${host}:${String(port)}`;
}

/** The host part of an endpoint (`[v6]:port` or `v4:port`). */
export function endpointHost(endpoint: string): string {
  const m = /^\[(.+)\]:\d+$/.exec(endpoint) ?? /^(.+):\d+$/.exec(endpoint);
  return m ? (m[1] as string) : endpoint;
}
