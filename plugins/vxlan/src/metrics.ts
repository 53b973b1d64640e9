import type { PluginMetrics } from '@weft/core';
import type { OverlayPlan, SegmentPlan } from './planner.js';

/**
 * The plugin's metrics, of bounded cardinality (no series per peer: a 5000-node cluster would make 5000 per node):
 * overlay peers by path, FDB entries, peers left out by kind, and each segment's members.
 */
export class VxlanMetrics {
  private readonly gPeers;
  private readonly gFdb;
  private readonly gExcluded;
  private readonly gMembers;
  private madeOf: { overlay: OverlayPlan | undefined; segments: readonly SegmentPlan[] } | undefined;

  constructor(metrics: PluginMetrics) {
    this.gPeers = metrics.gauge({ name: 'weft_vxlan_peers', help: 'Overlay peers of this node, by path: direct (routed over the underlay) or encapsulated', labelNames: ['path'] });
    this.gFdb = metrics.gauge({ name: 'weft_vxlan_fdb_entries', help: 'FDB entries the plugin keeps on this node, by device', labelNames: ['device'] });
    this.gExcluded = metrics.gauge({ name: 'weft_vxlan_peers_excluded', help: 'Nodes the overlay leaves out: pending (nothing published yet) or invalid (bad data)', labelNames: ['kind'] });
    this.gMembers = metrics.gauge({ name: 'weft_vxlan_segment_members', help: "Members of a declared segment as this node sees them (0 when this node is not one)", labelNames: ['segment'] });
  }

  /** Brings the series to the plans (nothing when they are the same objects as last time). */
  update(overlay: OverlayPlan | undefined, segments: readonly SegmentPlan[]): void {
    const made = this.madeOf;
    if (made !== undefined && made.overlay === overlay && made.segments === segments) return;
    this.madeOf = { overlay, segments };
    this.gPeers.reset();
    this.gFdb.reset();
    this.gExcluded.reset();
    this.gMembers.reset();
    if (overlay) {
      const encapsulated = overlay.peers.filter((p) => p.encapsulated.length > 0).length;
      this.gPeers.set({ path: 'encapsulated' }, encapsulated);
      this.gPeers.set({ path: 'direct' }, overlay.peers.length - encapsulated);
      this.gFdb.set({ device: 'overlay' }, encapsulated);
      for (const kind of ['pending', 'invalid'] as const) this.gExcluded.set({ kind }, overlay.excluded.filter((x) => x.kind === kind).length);
    }
    for (const s of segments) {
      this.gMembers.set({ segment: s.name }, s.member ? s.peers.length + 1 : 0);
      if (s.member) this.gFdb.set({ device: s.interface }, s.peers.length * 2);
    }
  }
}
