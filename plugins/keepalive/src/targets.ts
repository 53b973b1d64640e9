import { isIP } from 'node:net';
import type { NodeInfo } from '@weft/core';
import type { Plane } from './config.js';

/** The annotation the wireguard plugin publishes a node's overlay addresses in (read, never imported). */
export const OVERLAY_ANNOTATION = 'weft.io/wireguard-ip';

/** Where to probe a node on a plane, or why it cannot be. */
export type PlaneAddress = { readonly address: string } | { readonly missing: string };

/** IPv4 before IPv6. */
const pick = (list: readonly string[]) => list.find((a) => isIP(a) === 4) ?? list.find((a) => isIP(a) === 6);

/** The first host address of a CIDR (the pod CIDR's gateway, which the node answers on). */
export function firstHost(cidr: string): string | undefined {
  const [ip, len] = cidr.split('/');
  if (ip === undefined || len === undefined) return undefined;
  if (isIP(ip) === 4) {
    const n = ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    const size = 2 ** (32 - Number(len));
    const host = Math.floor(n / size) * size + (size > 2 ? 1 : 0);
    return [24, 16, 8, 0].map((s) => String(Math.floor(host / 2 ** s) % 256)).join('.');
  }
  if (isIP(ip) === 6) {
    // The network's ::1 (prefixes of /64 and shorter keep their network part in the first four groups).
    const expanded = expand6(ip);
    const prefix = Number(len);
    const bits = expanded.map((g) => g.toString(2).padStart(16, '0')).join('');
    const net = bits.slice(0, prefix).padEnd(128, '0');
    const groups = Array.from({ length: 8 }, (_, i) => parseInt(net.slice(i * 16, i * 16 + 16), 2));
    groups[7] = (groups[7] ?? 0) | 1;
    return groups.map((g) => g.toString(16)).join(':');
  }
  return undefined;
}

function expand6(ip: string): number[] {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => parseInt(g, 16));
}

/** A node's address on a plane. */
export function addressOn(node: NodeInfo, plane: Plane): PlaneAddress {
  if (plane === 'underlay') {
    const a = pick(node.internalAddresses);
    return a ? { address: a } : { missing: 'no internal address' };
  }
  if (plane === 'overlay') {
    const text = node.annotations[OVERLAY_ANNOTATION];
    const a = text ? pick(text.split(',').map((x) => x.trim()).filter((x) => isIP(x) !== 0)) : undefined;
    return a ? { address: a } : { missing: `no overlay address published (${OVERLAY_ANNOTATION})` };
  }
  const cidr = node.podCIDRs.find((c) => isIP(c.split('/')[0] ?? '') === 4) ?? node.podCIDRs[0];
  const a = cidr ? firstHost(cidr) : undefined;
  return a ? { address: a } : { missing: 'no pod CIDR' };
}
