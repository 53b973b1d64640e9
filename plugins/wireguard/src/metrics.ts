import type { PluginMetrics, WireGuardDeviceStatus } from '@weft/core';
import type { MeshPlan } from './planner.js';

/**
 * The mesh's metrics: peers, leadership, each peer's latest handshake and bytes, the peers left out for bad data.
 * Series of peers that left are removed; a device whose counters restart starts its peers' series again.
 */
export class MeshMetrics {
  private readonly gPeers;
  private readonly gLeader;
  private readonly gHandshake;
  private readonly cRx;
  private readonly cTx;
  private readonly gInvalid;
  private readonly lastBytes = new Map<string, { rx: number; tx: number }>();
  /** What the metrics were last made from: a heartbeat that saw no handshake and no byte changes none of them. */
  private madeOf: { plan: MeshPlan; counters: string } | undefined;

  constructor(metrics: PluginMetrics) {
    this.gPeers = metrics.gauge({ name: 'weft_wireguard_peers', help: 'WireGuard peers configured on this node' });
    this.gLeader = metrics.gauge({ name: 'weft_wireguard_leader', help: '1 when this node leads its location (granularity location)' });
    this.gHandshake = metrics.gauge({ name: 'weft_wireguard_peer_last_handshake_seconds', help: 'Unix time of the latest handshake with a peer (0: none yet)', labelNames: ['peer'] });
    this.cRx = metrics.counter({ name: 'weft_wireguard_peer_receive_bytes_total', help: 'Bytes received from a peer', labelNames: ['peer'] });
    this.cTx = metrics.counter({ name: 'weft_wireguard_peer_transmit_bytes_total', help: 'Bytes sent to a peer', labelNames: ['peer'] });
    this.gInvalid = metrics.gauge({ name: 'weft_wireguard_peer_invalid', help: '1 for a node or external peer left out of the mesh for bad data', labelNames: ['peer'] });
  }

  /** Brings the series to what `plan` and the device's `observed` status say. */
  update(plan: MeshPlan, observed: WireGuardDeviceStatus | undefined): void {
    const counters = (observed?.peers ?? []).map((p) => `${p.publicKey} ${String(p.latestHandshake)} ${String(p.receiveBytes)} ${String(p.transmitBytes)}`).join('\n');
    if (this.madeOf?.plan === plan && this.madeOf.counters === counters) return;
    this.madeOf = { plan, counters };
    const { gPeers, gLeader, gHandshake, cRx, cTx, gInvalid, lastBytes } = this;
    gPeers.set(plan.peers.length);
    gLeader.set(plan.isLeader ? 1 : 0);
    gHandshake.reset();
    gInvalid.reset();
    const byKey = new Map((observed?.peers ?? []).map((p) => [p.publicKey, p]));
    const seen = new Set<string>();
    for (const p of plan.peers) {
      const o = byKey.get(p.publicKey);
      seen.add(p.name);
      gHandshake.set({ peer: p.name }, o?.latestHandshake ?? 0);
      const prev = lastBytes.get(p.name) ?? { rx: 0, tx: 0 };
      const rx = o?.receiveBytes ?? 0;
      const tx = o?.transmitBytes ?? 0;
      // The device's counters restart with it: a drop starts the series again.
      if (rx < prev.rx || tx < prev.tx) {
        cRx.remove({ peer: p.name });
        cTx.remove({ peer: p.name });
        cRx.inc({ peer: p.name }, rx);
        cTx.inc({ peer: p.name }, tx);
      } else {
        cRx.inc({ peer: p.name }, rx - prev.rx);
        cTx.inc({ peer: p.name }, tx - prev.tx);
      }
      lastBytes.set(p.name, { rx, tx });
    }
    for (const name of [...lastBytes.keys()]) {
      if (seen.has(name)) continue;
      cRx.remove({ peer: name });
      cTx.remove({ peer: name });
      lastBytes.delete(name);
    }
    for (const x of plan.excluded) if (x.kind === 'invalid') gInvalid.set({ peer: x.node }, 1);
  }
}
