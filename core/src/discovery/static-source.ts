import type { AnnotationPatch, ClusterView, NodeInfo, NodeSource, Watchable } from '../api/cluster.js';
import type { StaticNode } from '../config/schema.js';
import { locationOf, makeView } from './view.js';

/**
 * The `static` discovery source: the nodes the config lists (or just this node). Publishing updates the own
 * node's annotations in memory, so plugins see their own published values as they would from Kubernetes.
 */
export class StaticNodeSource implements NodeSource {
  private view: ClusterView;
  private onChange: ((view: ClusterView) => void) | undefined;
  private nodes: NodeInfo[];

  constructor(
    private readonly selfName: string,
    declared: readonly StaticNode[],
  ) {
    this.nodes = declared.map((n) => ({
      name: n.name,
      internalAddresses: n.internalAddresses,
      externalAddresses: n.externalAddresses,
      podCIDRs: n.podCIDRs,
      labels: n.labels,
      annotations: n.annotations,
      ready: n.ready,
      location: locationOf(n.labels, n.annotations),
    }));
    this.view = makeView({ selfName, nodes: this.nodes, revision: 1 });
    this.nodes = [...this.view.nodes];
  }

  async start(_watches: ReadonlySet<Watchable>, onChange: (view: ClusterView) => void): Promise<void> {
    this.onChange = onChange;
    await Promise.resolve();
  }

  current(): ClusterView {
    return this.view;
  }

  synced(): boolean {
    return true;
  }

  async publish(patch: AnnotationPatch): Promise<void> {
    const self = this.view.self;
    const annotations: Record<string, string> = { ...self.annotations };
    let changed = false;
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) {
        if (key in annotations) {
          delete annotations[key];
          changed = true;
        }
      } else if (annotations[key] !== value) {
        annotations[key] = value;
        changed = true;
      }
    }
    if (!changed) return;
    const updated: NodeInfo = { ...self, annotations, location: locationOf(self.labels, annotations) };
    this.nodes = this.nodes.map((n) => (n.name === self.name ? updated : n));
    this.view = makeView({ selfName: this.selfName, nodes: this.nodes, revision: this.view.revision + 1 });
    await Promise.resolve();
    this.onChange?.(this.view);
  }

  async stop(): Promise<void> {
    this.onChange = undefined;
    await Promise.resolve();
  }
}
