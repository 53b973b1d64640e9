import { createSocket, type Socket } from 'node:dgram';
import { addressAt, type Network, networkContains, parseNetwork } from '@weft/core';
import type { MeshPlan, PlannedPeer } from './planner.js';

/** At most this many peers are poked after one reconcile (a cold start of a large mesh pokes the first ones only). */
export const MAX_POKES = 256;

/**
 * Where to send one datagram through the tunnel to each node peer that is new since the previous plan (or whose
 * endpoint changed), so that WireGuard initiates a handshake now. Why: a node that joins initiates towards peers that
 * do not know it yet, and they drop it; WireGuard then retries only after 5 s. Each peer, once it learns of the new
 * node, pokes it in turn — and that initiation, to a node that already knows it, completes at once.
 * The address is the peer's overlay address (an allowed IP inside the overlay range), else the first address of its
 * first allowed network.
 */
export function pokeTargets(previous: MeshPlan | undefined, next: MeshPlan, overlayRanges: readonly string[]): string[] {
  const before = new Set((previous?.peers ?? []).map((p) => `${p.publicKey} ${p.endpoint ?? ''}`));
  const overlays = overlayRanges.map((r) => parseNetwork(r)).filter((n): n is Network => n !== undefined);
  const out: string[] = [];
  for (const p of next.peers) {
    if (p.kind === 'external' || p.endpoint === undefined || before.has(`${p.publicKey} ${p.endpoint}`)) continue;
    const target = addressOf(p, overlays);
    if (target !== undefined) out.push(target);
    if (out.length >= MAX_POKES) break;
  }
  return out;
}

function addressOf(p: PlannedPeer, overlays: readonly Network[]): string | undefined {
  for (const cidr of p.allowedIPs) {
    const [ip, prefix] = cidr.split('/');
    if (ip !== undefined && (prefix === '32' || prefix === '128') && overlays.some((o) => networkContains(o, ip))) return ip;
  }
  const first = p.allowedIPs[0] === undefined ? undefined : parseNetwork(p.allowedIPs[0]);
  return first ? addressAt(first, first.prefix >= (first.family === 4 ? 31 : 127) ? 0n : 1n) : undefined;
}

/** Sends one empty datagram to each address (port 9, discard); errors are ignored: a poke is only a hint. */
export async function poke(addresses: readonly string[], port = 9): Promise<void> {
  if (addresses.length === 0) return;
  const sockets = new Map<'udp4' | 'udp6', Socket>();
  const socketFor = (a: string) => {
    const type = a.includes(':') ? 'udp6' : 'udp4';
    let s = sockets.get(type);
    if (!s) {
      s = createSocket(type).on('error', () => undefined);
      sockets.set(type, s);
    }
    return s;
  };
  try {
    await Promise.all(addresses.map((a) => new Promise<void>((resolve) => socketFor(a).send(Buffer.alloc(0), port, a, () => resolve()))));
  } finally {
    for (const s of sockets.values()) s.close();
  }
}
