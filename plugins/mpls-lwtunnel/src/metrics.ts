import type { PluginMetrics } from '@weft/core';
import type { IngressPlan } from './planner.js';

/** The plugin's metrics, of bounded cardinality: per VIP at most, never per flow. */
export class MplsLwtunnelMetrics {
  private readonly gVips;
  private readonly gEndpoints;
  private readonly gUnused;
  private readonly gRefused;
  private readonly gPods;
  private readonly gLabels;
  private readonly gExhausted;
  private readonly gPeers;
  private readonly gMoved;

  constructor(metrics: PluginMetrics) {
    this.gVips = metrics.gauge({ name: 'weft_mpls_lwtunnel_vips', help: 'VIPs this ingress node tunnels (0 on other nodes)' });
    this.gEndpoints = metrics.gauge({ name: 'weft_mpls_lwtunnel_endpoints', help: "Endpoints in this ingress node's tables, by state (active, draining, drained)", labelNames: ['state'] });
    this.gUnused = metrics.gauge({ name: 'weft_mpls_lwtunnel_unused_endpoints', help: 'Endpoints this ingress node does not use: not on-link (another location or subnet), or no label published yet; see /api/mpls-lwtunnel/status' });
    this.gRefused = metrics.gauge({ name: 'weft_mpls_lwtunnel_refused_services', help: 'Tunnelled Services refused (hostile or broken annotations, a contested VIP)' });
    this.gPods = metrics.gauge({ name: 'weft_mpls_lwtunnel_pods', help: 'Endpoint pods on this node, by state: ready (set up, label published), missing or failed', labelNames: ['state'] });
    this.gLabels = metrics.gauge({ name: 'weft_mpls_lwtunnel_labels', help: 'Labels this node gives its endpoint pods, by state: used, held (let go, not reusable yet) and free', labelNames: ['state'] });
    this.gExhausted = metrics.gauge({ name: 'weft_mpls_lwtunnel_labels_exhausted', help: 'Endpoint pods on this node without a label: the range is used up' });
    this.gPeers = metrics.gauge({ name: 'weft_mpls_lwtunnel_bad_label_annotations', help: 'Nodes whose weft.io/mpls-labels had entries left out (bad address, label, duplicates)' });
    this.gMoved = metrics.gauge({ name: 'weft_mpls_lwtunnel_buckets_moved', help: "Buckets the last change of a VIP's endpoints moved", labelNames: ['vip'] });
  }

  update(o: {
    plan: IngressPlan | undefined;
    refused: number;
    pods: { ready: number; missing: number; failed: number };
    labels: { used: number; held: number; free: number };
    exhausted: number;
    badPeers: number;
    moved: ReadonlyMap<string, number>;
  }): void {
    this.gVips.set(o.plan?.vips.length ?? 0);
    const states = { active: 0, draining: 0, drained: 0 };
    for (const v of o.plan?.vips ?? []) for (const e of v.endpoints) states[e.state] += 1;
    for (const [state, n] of Object.entries(states)) this.gEndpoints.set({ state }, n);
    this.gUnused.set(o.plan?.unused.length ?? 0);
    this.gRefused.set(o.refused);
    for (const [state, n] of Object.entries(o.pods)) this.gPods.set({ state }, n);
    for (const [state, n] of Object.entries(o.labels)) this.gLabels.set({ state }, n);
    this.gExhausted.set(o.exhausted);
    this.gPeers.set(o.badPeers);
    this.gMoved.reset();
    for (const [vip, n] of o.moved) this.gMoved.set({ vip }, n);
  }
}
