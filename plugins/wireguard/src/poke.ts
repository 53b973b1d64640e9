import { createSocket, type Socket } from 'node:dgram';
import { addressAt, type DesiredState, type Network, parseNetwork, type WireGuardDeviceStatus } from '@weft/core';
import { overlayHostAddresses } from './overlay-service.js';
import type { MeshPlan, PlannedPeer } from './planner.js';

/** At most this many peers are poked after one reconcile (a cold start of a large mesh pokes the first ones only). */
export const MAX_POKES = 256;

/** The node peers of `next` with an endpoint that `previous` did not have (by key and endpoint), in plan order. */
export function newPeers(previous: MeshPlan | undefined, next: MeshPlan): PlannedPeer[] {
  const before = new Set((previous?.peers ?? []).map((p) => `${p.publicKey} ${p.endpoint ?? ''}`));
  return next.peers.filter((p) => p.kind !== 'external' && p.endpoint !== undefined && !before.has(`${p.publicKey} ${p.endpoint}`));
}

/**
 * Where to send one datagram through the tunnel to each of `peers` — the node peers new since the previous plan, or
 * whose endpoint changed ({@link newPeers}) — so that WireGuard initiates a handshake now. Why: a node that joins initiates towards peers that
 * do not know it yet, and they drop it; WireGuard then retries only after 5 s. Each peer, once it learns of the new
 * node, pokes it in turn — and that initiation, to a node that already knows it, completes at once.
 * The address is the peer's overlay address (an allowed IP inside the overlay range), else the first address of its
 * first allowed network. At most {@link MAX_POKES}.
 */
export function pokeAddresses(peers: readonly PlannedPeer[], overlayRanges: readonly string[]): string[] {
  const overlays = overlayRanges.map((r) => parseNetwork(r)).filter((n): n is Network => n !== undefined);
  const out: string[] = [];
  for (const p of peers) {
    const target = addressOf(p, overlays);
    if (target !== undefined) out.push(target);
    if (out.length >= MAX_POKES) break;
  }
  return out;
}

/**
 * How long after its poke a new peer may go without a handshake before the side whose public key sorts first resets
 * it (see {@link resetAfter}). A handshake takes one round trip; this is many.
 */
export const RESET_AFTER_MS = 500;
/** Above this many new peers at once (a cold start), none is tracked for a reset: WireGuard's own retry serves. */
export const MAX_RESETS = 16;

/**
 * When this node resets a new peer that has had no handshake: after {@link RESET_AFTER_MS} when its own key sorts
 * first, after twice that otherwise. Both sides wait for each other; were both to reset at once, their initiations
 * could cross again (below). One side goes first, and by the time the other's turn comes the handshake is done.
 */
export function resetAfter(selfKey: string, peerKey: string): number {
  return selfKey < peerKey ? RESET_AFTER_MS : 2 * RESET_AFTER_MS;
}

/**
 * The peers, among those newly keyed and poked (`awaiting`, public keys), that the device holds and that still have
 * had no handshake. Why: when a node joins, it and a peer add each other in the same few milliseconds, and each pokes
 * the other (traffic is waiting too: keepalive's probes). Then either
 * - one's first initiation reaches the other before the other holds it, and is dropped; or
 * - both initiate within a one-way delay of each other: each answers the other's initiation, which replaces its own
 *   handshake state, so neither accepts the answer it then gets, and each waits for data it will never receive.
 * Either way WireGuard initiates again only after its 5 s rekey timeout, which a poke cannot shorten. Such a peer is
 * taken out of the device and put back (a fresh peer state) and poked again: the next packet initiates at once, and
 * the other side, holding this node by now and not initiating itself, answers it.
 */
export function stuckPeers(awaiting: ReadonlySet<string>, plan: MeshPlan, observed: WireGuardDeviceStatus | undefined): PlannedPeer[] {
  const handshaken = new Map((observed?.peers ?? []).map((p) => [p.publicKey, p.latestHandshake > 0]));
  return plan.peers.filter((p) => awaiting.has(p.publicKey) && handshaken.get(p.publicKey) === false);
}

/** The desired state without these peers in any WireGuard device (what a reset applies first). */
export function withoutPeers(state: DesiredState, keys: ReadonlySet<string>): DesiredState {
  return { ...state, ...(state.wireguard ? { wireguard: state.wireguard.map((d) => ({ ...d, peers: d.peers.filter((p) => !keys.has(p.publicKey)) })) } : {}) };
}

function addressOf(p: PlannedPeer, overlays: readonly Network[]): string | undefined {
  const own = overlayHostAddresses(p.allowedIPs, overlays);
  if (own.ip4 !== undefined || own.ip6 !== undefined) return own.ip4 ?? own.ip6;
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
