import type { PluginMetrics } from '@weft/core';
import type { IngressPlan } from './planner.js';

/** The plugin's metrics, of bounded cardinality: per VIP at most (a handful per node), never per flow. */
export class GreTunnelMetrics {
  private readonly gVips;
  private readonly gEndpoints;
  private readonly gRefused;
  private readonly gPods;
  private readonly gMoved;
  private readonly gBuild;

  constructor(metrics: PluginMetrics) {
    this.gVips = metrics.gauge({ name: 'weft_gre_tunnel_vips', help: 'VIPs this ingress node tunnels (0 on other nodes)' });
    this.gEndpoints = metrics.gauge({ name: 'weft_gre_tunnel_endpoints', help: "Endpoints in this ingress node's tables, by state (active, draining, drained)", labelNames: ['state'] });
    this.gRefused = metrics.gauge({ name: 'weft_gre_tunnel_refused_services', help: 'Tunnelled Services refused (hostile or broken annotations, a contested VIP); see /api/gre-tunnel/status' });
    this.gPods = metrics.gauge({ name: 'weft_gre_tunnel_pods', help: 'Endpoint pods on this node, by state: ready (set up), missing (no namespace holds the address) or failed', labelNames: ['state'] });
    this.gMoved = metrics.gauge({ name: 'weft_gre_tunnel_buckets_moved', help: "Buckets the last change of a VIP's endpoints moved (Maglev's disruption)", labelNames: ['vip'] });
    this.gBuild = metrics.gauge({ name: 'weft_gre_tunnel_table_build_seconds', help: "How long the last build of a VIP's Maglev table took", labelNames: ['vip'] });
  }

  update(plan: IngressPlan | undefined, refused: number, pods: { ready: number; missing: number; failed: number }, moved: ReadonlyMap<string, number>): void {
    this.gVips.set(plan?.vips.length ?? 0);
    this.gEndpoints.reset();
    const states = { active: 0, draining: 0, drained: 0 };
    for (const v of plan?.vips ?? []) for (const e of v.endpoints) states[e.state] += 1;
    for (const [state, n] of Object.entries(states)) this.gEndpoints.set({ state }, n);
    this.gRefused.set(refused);
    for (const [state, n] of Object.entries(pods)) this.gPods.set({ state }, n);
    for (const v of plan?.vips ?? []) if (v.buildMs > 0.05) this.gBuild.set({ vip: v.vip }, v.buildMs / 1000);
    this.gMoved.reset();
    for (const [vip, n] of moved) this.gMoved.set({ vip }, n);
  }
}
