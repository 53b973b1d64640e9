import type { NodeInfo, WireGuardDeviceStatus } from '@weft/core';
import type { WireGuardConfig } from './config.js';
import { ownEndpoint } from './facts.js';
import { HANDSHAKE_FRESH_SECONDS, type MeshPlan } from './planner.js';

/** What the last reconcile planned and saw. */
export interface LastRun {
  readonly plan: MeshPlan;
  readonly observed: WireGuardDeviceStatus | undefined;
  readonly at: number;
}

/** What the status adds to the last run: the plugin's settings and this node's key, node and overlay address. */
export interface StatusFacts {
  readonly config: WireGuardConfig;
  readonly publicKey: string;
  readonly self: NodeInfo;
  readonly overlay: { readonly ip4: string; readonly since: number } | undefined;
  /** Unix time in seconds. */
  readonly now: number;
}

/** This node's view of the mesh, as `/api/wireguard/status` serves it and `weft lab status` prints its summary. */
export function meshStatus(last: LastRun | undefined, facts: StatusFacts) {
  const { config } = facts;
  if (!last) return { node: facts.self.name, converged: false, summary: 'not reconciled yet' };
  const { plan, observed, at } = last;
  const byKey = new Map((observed?.peers ?? []).map((p) => [p.publicKey, p]));
  const peers = plan.peers.map((p) => {
    const o = byKey.get(p.publicKey);
    const hs = o?.latestHandshake ?? 0;
    return { ...p, endpoint: p.endpoint ?? null, location: p.location ?? null, latestHandshake: hs, handshakeAgeSeconds: hs > 0 ? facts.now - hs : null, receiveBytes: o?.receiveBytes ?? 0, transmitBytes: o?.transmitBytes ?? 0 };
  });
  const fresh = peers.filter((p) => p.handshakeAgeSeconds !== null && p.handshakeAgeSeconds <= HANDSHAKE_FRESH_SECONDS).length;
  return {
    node: plan.self,
    interface: config.interface,
    publicKey: facts.publicKey,
    port: config.port,
    endpoint: ownEndpoint(facts.self, config.port).endpoint ?? null,
    overlay: facts.overlay ? { ipv4: facts.overlay.ip4, ipv6: plan.addresses[1]?.split('/')[0] ?? null, since: facts.overlay.since } : null,
    granularity: plan.granularity,
    location: plan.location,
    leaders: plan.leaders,
    isLeader: plan.isLeader,
    observedAt: at,
    // Every node of the view that should be a peer is one (handshakes need traffic, so they are not asked for).
    converged: plan.selfProblem === undefined && !plan.excluded.some((x) => x.kind === 'pending'),
    summary: `${String(peers.length)} peer${peers.length === 1 ? '' : 's'}, ${String(fresh)} with a fresh handshake${plan.isLeader ? ', leader' : ''}`,
    peers,
    excluded: plan.excluded,
  };
}

/** Seconds since each planned peer's latest handshake (undefined: none yet), for the graph. */
export function handshakeAgesOf(plan: MeshPlan, observed: WireGuardDeviceStatus | undefined, now: number): Record<string, number | undefined> {
  const byKey = new Map((observed?.peers ?? []).map((p) => [p.publicKey, p]));
  return Object.fromEntries(
    plan.peers.map((p) => {
      const hs = byKey.get(p.publicKey)?.latestHandshake ?? 0;
      return [p.name, hs > 0 ? now - hs : undefined];
    }),
  );
}
