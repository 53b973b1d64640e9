import { canonicalIP, type Family, parsePrefix } from './ip.js';
import type { NLink, NMplsRoute, NRoute, NRule } from './normalize.js';

const TABLES: Record<string, number> = { main: 254, local: 255, default: 253 };
const tableNumber = (t: unknown): number => (typeof t === 'string' && t in TABLES ? (TABLES[t] as number) : Number(t ?? 254));

/** One object of `ip -json` output. */
export type Json = Record<string, unknown>;

export function parseLink(j: Json): NLink | undefined {
  const info = (j.linkinfo ?? {}) as Json;
  const kind = info.info_kind as string | undefined;
  const data = (info.info_data ?? {}) as Json;
  const flags = (j.flags ?? []) as string[];
  const base = {
    name: j.ifname as string,
    mtu: j.mtu as number,
    up: flags.includes('UP'),
    ...(typeof j.master === 'string' ? { master: j.master } : {}),
    ...(typeof j.address === 'string' ? { address: j.address } : {}),
  };
  switch (kind) {
    case 'bridge':
    case 'dummy':
    case 'wireguard':
      return { ...base, kind };
    case 'veth':
      // `link` names the peer when it is in this namespace; a peer elsewhere shows only its namespace id.
      return { ...base, kind: 'veth', peer: typeof j.link === 'string' ? j.link : undefined } as unknown as NLink;
    case 'vxlan': {
      const local = (data.local ?? data.local6) as string | undefined;
      return {
        ...base,
        kind: 'vxlan',
        vni: data.id as number,
        port: data.port as number,
        learning: data.learning === true,
        ...(local ? { local: canonicalIP(local) } : {}),
        ...(typeof data.link === 'string' ? { dev: data.link } : {}),
      };
    }
    case 'gre':
    case 'ip6gre':
    case 'ipip': {
      if (kind !== 'ipip' && data.external === true) {
        const external: NLink = { ...base, kind, external: true, ...(typeof data.ttl === 'number' && data.ttl !== 0 ? { ttl: data.ttl } : {}) };
        return external;
      }
      const key = data.ikey ?? data.key;
      const keyNumber = typeof key === 'string' && key.includes('.') ? key.split('.').reduce((a, b) => a * 256 + Number(b), 0) : (key as number | undefined);
      return {
        ...base,
        kind,
        remote: canonicalIP(String(data.remote)),
        ...(typeof data.local === 'string' && data.local !== 'any' ? { local: canonicalIP(data.local) } : {}),
        ...(keyNumber ? { key: keyNumber } : {}),
        ...(typeof data.ttl === 'number' && data.ttl !== 0 ? { ttl: data.ttl } : {}),
      } as NLink;
    }
    default:
      return undefined; // a kind weft does not manage: never owned
  }
}

export function parseRoute(j: Json, family: Family): NRoute | undefined {
  let dst = j.dst as string;
  if (dst === 'default') dst = family === 4 ? '0.0.0.0/0' : '::/0';
  const p = parsePrefix(dst, { hostDefault: true });
  if (!p) return undefined;
  const flags = (j.flags ?? []) as string[];
  const encap = j.encap === 'mpls' && typeof j.labels === 'string' ? j.labels : undefined;
  return {
    family,
    dst: `${p.address}/${p.prefix}`,
    table: tableNumber(j.table),
    metric: typeof j.metric === 'number' ? j.metric : 0,
    onlink: flags.includes('onlink'),
    mpls: encap ? encap.split('/').map(Number) : [],
    ...((j.encap === 'ip' || j.encap === 'ip6') && typeof j.encap_dst === 'string'
      ? { ipEncap: { dst: canonicalIP(j.encap_dst) ?? j.encap_dst, ...(typeof j.ttl === 'number' && j.ttl !== 0 ? { ttl: j.ttl } : {}) } }
      : {}),
    ...(typeof j.dev === 'string' ? { dev: j.dev } : {}),
    ...(typeof j.gateway === 'string' ? { via: canonicalIP(j.gateway) } : {}),
    ...(typeof j.prefsrc === 'string' ? { src: canonicalIP(j.prefsrc) } : {}),
  };
}

export function parseMpls(j: Json): NMplsRoute | undefined {
  const label = Number(j.dst);
  if (!Number.isInteger(label)) return undefined;
  // `ip -f mpls -json` names the swapped stack `to` and the next hop `via: { family, host }`.
  const as = j.to;
  const via = typeof j.via === 'object' && j.via !== null ? (j.via as Json).host : j.gateway;
  return {
    label,
    as: typeof as === 'string' ? as.split('/').map(Number) : [],
    ...(typeof j.dev === 'string' ? { dev: j.dev } : {}),
    ...(typeof via === 'string' ? { via: canonicalIP(via) } : {}),
  };
}

export function parseRule(j: Json, family: Family): NRule {
  const side = (addr: unknown, len: unknown): string | undefined => {
    if (typeof addr !== 'string' || addr === 'all') return undefined;
    const bits = typeof len === 'number' ? len : family === 4 ? 32 : 128;
    return `${canonicalIP(addr)}/${bits}`;
  };
  const from = side(j.src, j.srclen);
  const to = side(j.dst, j.dstlen);
  const fwmark = typeof j.fwmark === 'string' ? Number(j.fwmark) : undefined;
  return {
    family,
    priority: j.priority as number,
    table: tableNumber(j.table),
    ...(fwmark !== undefined ? { fwmark, fwmask: typeof j.fwmask === 'string' ? Number(j.fwmask) : 0xffffffff } : {}),
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
  };
}

/**
 * Path of a sysctl key under `root` (`/proc/sys`, or where a writable copy of it is mounted):
 * `net.ipv4.conf.eth0/100.forwarding` → `/proc/sys/net/ipv4/conf/eth0.100/forwarding`.
 */
export function sysctlPath(key: string, root = '/proc/sys'): string {
  return `${root}/${key
    .split('.')
    .map((part) => part.replaceAll('/', '.'))
    .join('/')}`;
}
