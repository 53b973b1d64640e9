import type { PluginStatusReport } from '@weft/core';
import type { VxlanConfig } from './config.js';
import type { OverlayPlan, SegmentPlan } from './planner.js';

/** What `/api/vxlan/status` serves: the overlay's peers and their paths, the segments and their members. */
export interface VxlanStatus extends PluginStatusReport {
  readonly node: string;
  readonly mode: VxlanConfig['mode'];
  readonly overlay?: {
    readonly interface: string;
    readonly vni: number;
    readonly mac: string;
    readonly underlay: string;
    readonly mtu: number | undefined;
    readonly peers: readonly { readonly name: string; readonly path: string; readonly underlay: string; readonly mac: string; readonly direct: readonly string[]; readonly encapsulated: readonly string[] }[];
    readonly excluded: OverlayPlan['excluded'];
  };
  readonly segments: readonly {
    readonly name: string;
    readonly vni: number;
    readonly interface: string;
    readonly member: boolean;
    readonly members: readonly string[];
    readonly addresses: readonly string[];
    readonly excluded: SegmentPlan['excluded'];
  }[];
  readonly missingBridges: readonly string[];
}

/** This node's status from the last reconcile (`converged: false` before one, or with peers or bridges missing). */
export function vxlanStatus(
  last: { overlay: OverlayPlan | undefined; segments: readonly SegmentPlan[]; mtu: number | undefined; missingBridges: readonly string[] } | undefined,
  config: VxlanConfig,
  node: string,
): VxlanStatus {
  if (!last) return { converged: false, summary: 'not reconciled yet', node, mode: config.mode, segments: [], missingBridges: [] };
  const o = last.overlay;
  const parts: string[] = [];
  if (config.mode === 'overlay') {
    if (!o) parts.push('no underlay address');
    else {
      const direct = o.peers.filter((p) => p.encapsulated.length === 0).length;
      parts.push(`${String(o.peers.length)} peers (${String(direct)} direct)`);
      if (o.excluded.length > 0) parts.push(`${String(o.excluded.length)} left out`);
    }
  }
  const mine = last.segments.filter((s) => s.member);
  if (config.segments.length > 0) parts.push(`${String(mine.length)}/${String(config.segments.length)} segments`);
  if (last.missingBridges.length > 0) parts.push(`missing bridge ${last.missingBridges.join(', ')}`);
  const converged = (config.mode !== 'overlay' || (o !== undefined && o.excluded.every((x) => x.kind !== 'pending'))) && last.missingBridges.length === 0 && mine.every((s) => s.excluded.length === 0);
  return {
    converged,
    summary: parts.join(', ') || 'nothing to do',
    node,
    mode: config.mode,
    ...(o
      ? {
          overlay: {
            interface: config.interface,
            vni: config.vni,
            mac: o.self.mac,
            underlay: o.self.underlay,
            mtu: last.mtu,
            peers: o.peers.map((p) => ({ name: p.name, path: p.encapsulated.length === 0 ? 'direct' : p.direct.length === 0 ? 'encapsulated' : 'mixed', underlay: p.underlay, mac: p.mac, direct: p.direct, encapsulated: p.encapsulated })),
            excluded: o.excluded,
          },
        }
      : {}),
    segments: last.segments.map((s) => ({
      name: s.name,
      vni: s.vni,
      interface: s.interface,
      member: s.member,
      members: s.member ? [node, ...s.peers.map((p) => p.name)].sort() : [],
      addresses: s.addresses,
      excluded: s.excluded,
    })),
    missingBridges: last.missingBridges,
  };
}
