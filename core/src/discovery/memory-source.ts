import type { NodeReads } from './reads.js';
import type { AnnotationPatch, ClusterView, EndpointSliceInfo, NodeInfo, NodeSource, Watchable } from '../api/cluster.js';
import { locationOf, makeView } from './view.js';

/** Applies an annotation patch; `changed` is false when nothing differs. */
export function patchAnnotations(annotations: Readonly<Record<string, string>>, patch: AnnotationPatch): { annotations: Record<string, string>; changed: boolean } {
  const next: Record<string, string> = { ...annotations };
  let changed = false;
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      if (key in next) {
        delete next[key];
        changed = true;
      }
    } else if (next[key] !== value) {
      next[key] = value;
      changed = true;
    }
  }
  return { annotations: next, changed };
}

/**
 * A node source whose nodes live in memory: the `static` source and the test kit's fake cluster. Every change makes
 * a new immutable snapshot and tells the agent; publishing patches the own node's annotations.
 */
export class MemoryNodeSource implements NodeSource {
  protected readonly nodes = new Map<string, NodeInfo>();
  protected services: ClusterView['services'];
  protected endpointSlices: readonly EndpointSliceInfo[] | undefined;
  private view: ClusterView;
  private onChange: ((view: ClusterView) => void) | undefined;

  constructor(
    readonly selfName: string,
    nodes: readonly NodeInfo[],
  ) {
    for (const n of nodes) this.nodes.set(n.name, n);
    this.view = this.snapshot(1);
  }

  /** Keeps every annotation and label, whatever `reads` says (the nodes are the test's or the config's). */
  async start(_watches: ReadonlySet<Watchable>, onChange: (view: ClusterView) => void, _reads?: NodeReads): Promise<void> {
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
    const { annotations, changed } = patchAnnotations(self.annotations, patch);
    await Promise.resolve();
    if (!changed) return;
    this.nodes.set(self.name, { ...self, annotations, location: locationOf(self.labels, annotations) });
    this.emit();
  }

  async stop(): Promise<void> {
    this.onChange = undefined;
    await Promise.resolve();
  }

  /** Publishes a new snapshot of the in-memory state and tells the agent. */
  protected emit(): void {
    this.view = this.snapshot(this.view.revision + 1);
    this.onChange?.(this.view);
  }

  private snapshot(revision: number): ClusterView {
    return makeView({ selfName: this.selfName, nodes: [...this.nodes.values()], services: this.services, endpointSlices: this.endpointSlices, revision });
  }
}
