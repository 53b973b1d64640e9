import { createHash } from 'node:crypto';
import { canonicalIP, familyOf, type Family, ipToBigInt, type NodeInfo, parseNetwork } from '@weft/core';

/** What this plugin publishes on its own node: the overlay VTEP's MAC and underlay address, `02:5e:…,198.18.1.11`. */
export const VTEP_ANNOTATION = 'weft.io/vxlan-vtep';

/** The longest `weft.io/vxlan-vtep` read: a MAC, a comma and an IPv6 address fit well inside it. */
export const MAX_VTEP_BYTES = 100;

/**
 * A VTEP's MAC, the same on every start and every re-creation of the device (flannel's VTEP took a new random MAC on
 * restart, and every peer dropped the node's traffic until it relearnt it): derived from the node's name and the
 * VNI, locally administered (bit 1 of the first octet) and unicast (bit 0 clear).
 */
export function vtepMAC(node: string, vni: number): string {
  const key = `${node}\0${String(vni)}`;
  let mac = macs.get(key);
  if (mac === undefined) {
    const h = createHash('sha256').update(`weft-vxlan\0${key}`).digest();
    mac = [((h[0] as number) & 0xfc) | 0x02, ...h.subarray(1, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
    if (macs.size >= MAX_REMEMBERED_MACS) macs.clear();
    macs.set(key, mac);
  }
  return mac;
}

/** MACs computed so far (every segment plan needs every member's): a hash each is the bulk of a plan's time. */
const macs = new Map<string, string>();
const MAX_REMEMBERED_MACS = 65_536;

/** Whether `text` is a MAC a peer may use for its VTEP: six octets, unicast, not all zero. */
export function isUnicastMAC(text: string): boolean {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(text)) return false;
  if ((parseInt(text.slice(0, 2), 16) & 1) === 1) return false;
  return text !== '00:00:00:00:00:00';
}

/** A node's published VTEP, read and checked. */
export interface PublishedVtep {
  readonly mac: string;
  readonly underlay: string;
}

/**
 * Reads a node's `weft.io/vxlan-vtep` and checks it against what the cluster says of the node: the MAC must be a
 * unicast one, the underlay address one of the node's own (so that no node can point its VTEP, and the traffic
 * for its pods, at another machine) and outside every pod network (the cluster's plan and any node's pod CIDRs).
 */
export function readVtep(node: NodeInfo, podNetworks: PodNetworks): { vtep?: PublishedVtep; problem?: string; pending?: true } {
  const text = node.annotations[VTEP_ANNOTATION];
  if (text === undefined || text === '') return { pending: true };
  if (text.length > MAX_VTEP_BYTES) return { problem: `${VTEP_ANNOTATION}: ${String(text.length)} characters, more than ${String(MAX_VTEP_BYTES)}` };
  const shown = JSON.stringify(text.slice(0, 60));
  const parts = text.split(',');
  if (parts.length !== 2) return { problem: `${VTEP_ANNOTATION}: expected "MAC,IP", got ${shown}` };
  const mac = (parts[0] as string).trim().toLowerCase();
  if (!isUnicastMAC(mac)) return { problem: `${VTEP_ANNOTATION}: ${JSON.stringify(mac)} is not a unicast MAC address` };
  const underlay = canonicalIP((parts[1] as string).trim());
  if (underlay === undefined) return { problem: `${VTEP_ANNOTATION}: ${JSON.stringify((parts[1] as string).slice(0, 60))} is not an IP address` };
  const own = new Set([...node.internalAddresses, ...node.externalAddresses].map((a) => canonicalIP(a)));
  if (!own.has(underlay)) return { problem: `${VTEP_ANNOTATION}: ${underlay} is not one of the node's addresses` };
  const pod = podNetworks.find(underlay);
  if (pod !== undefined) return { problem: `${VTEP_ANNOTATION}: ${underlay} lies in the pod network ${pod}` };
  return { vtep: { mac, underlay } };
}

/**
 * A set of networks (the cluster's pod networks and every node's pod CIDRs) that answers "which one holds this
 * address" in time independent of how many there are: one lookup per prefix length in use, not one test per network.
 */
export class PodNetworks {
  private readonly byLength = new Map<number, Map<string, string>>();

  constructor(networks: Iterable<string>) {
    for (const text of networks) {
      const n = parseNetwork(text);
      if (!n) continue;
      // One map per family and prefix length (an IPv6 length + 1000), keyed by the network's first address.
      const code = n.prefix + (n.family === 6 ? 1000 : 0);
      let m = this.byLength.get(code);
      if (!m) {
        m = new Map<string, string>();
        this.byLength.set(code, m);
      }
      m.set(n.base.toString(16), text);
    }
  }

  /** The network holding `ip`, as it was given; undefined when none does. */
  find(ip: string): string | undefined {
    const a = ipToBigInt(ip);
    if (!a) return undefined;
    const width = a.family === 4 ? 32n : 128n;
    for (const [code, m] of this.byLength) {
      const family = code >= 1000 ? 6 : 4;
      if (family !== a.family) continue;
      const prefix = BigInt(code % 1000);
      const base = (a.value >> (width - prefix)) << (width - prefix);
      const hit = m.get(base.toString(16));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
}

/** The node's first internal address of a family (the underlay a VTEP uses), else its first external one. */
export function underlayAddress(node: NodeInfo, family: Family): string | undefined {
  const pick = (list: readonly string[]) => list.map((a) => canonicalIP(a)).find((a): a is string => a !== undefined && familyOf(a) === family);
  return pick(node.internalAddresses) ?? pick(node.externalAddresses);
}

/** The underlay family a node uses with `family: auto`: IPv4 when it has such an address, else IPv6. */
export function autoFamily(node: NodeInfo): Family {
  return underlayAddress(node, 4) !== undefined ? 4 : 6;
}

