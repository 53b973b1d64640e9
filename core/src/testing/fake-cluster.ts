import type { AnnotationPatch, ClusterView, EndpointSliceInfo, NodeInfo, NodeSource, ServiceInfo, Watchable } from '../api/cluster.js';
import { bareNode, locationOf, makeView } from '../discovery/view.js';

/** A node for a test: only `name` is required; the rest defaults to empty and Ready. */
export type NodeInit = Partial<Omit<NodeInfo, 'location'>> & { readonly name: string };

/** Fills a {@link NodeInit} into a full node. */
export function makeNode(init: NodeInit): NodeInfo {
  const base = { ...bareNode(init.name), ...init };
  return { ...base, location: locationOf(base.labels, base.annotations) };
}

/**
 * An in-memory discovery source for tests: change nodes, services and slices at will; every change publishes a new
 * snapshot and triggers the plugins, as a real source does. Published annotations land on the own node.
 */
export class FakeCluster implements NodeSource {
  private nodes = new Map<string, NodeInfo>();
  private services: readonly ServiceInfo[] | undefined;
  private endpointSlices: readonly EndpointSliceInfo[] | undefined;
  private view: ClusterView;
  private onChange: ((view: ClusterView) => void) | undefined;
  private isSynced = true;
  /** Every patch published, in order. */
  readonly published: AnnotationPatch[] = [];

  constructor(
    readonly selfName: string,
    nodes: readonly NodeInit[] = [],
  ) {
    for (const n of nodes) this.nodes.set(n.name, makeNode(n));
    this.view = this.snapshot(1);
  }

  async start(_watches: ReadonlySet<Watchable>, onChange: (view: ClusterView) => void): Promise<void> {
    this.onChange = onChange;
    await Promise.resolve();
  }

  current(): ClusterView {
    return this.view;
  }

  synced(): boolean {
    return this.isSynced;
  }

  /** Makes the source report itself unsynced (as during a first list that has not finished). */
  setSynced(synced: boolean): void {
    this.isSynced = synced;
  }

  async publish(patch: AnnotationPatch): Promise<void> {
    this.published.push(patch);
    const self = this.nodes.get(this.selfName) ?? makeNode({ name: this.selfName });
    const annotations: Record<string, string> = { ...self.annotations };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete annotations[k];
      else annotations[k] = v;
    }
    await Promise.resolve();
    this.setNode({ ...self, annotations });
  }

  /** Adds or replaces a node. */
  setNode(init: NodeInit): void {
    this.nodes.set(init.name, makeNode(init));
    this.emit();
  }

  /** Removes a node. */
  removeNode(name: string): void {
    this.nodes.delete(name);
    this.emit();
  }

  /** Replaces the services (and makes the view carry them). */
  setServices(services: readonly ServiceInfo[]): void {
    this.services = services;
    this.emit();
  }

  /** Replaces the endpoint slices. */
  setEndpointSlices(slices: readonly EndpointSliceInfo[]): void {
    this.endpointSlices = slices;
    this.emit();
  }

  async stop(): Promise<void> {
    this.onChange = undefined;
    await Promise.resolve();
  }

  private snapshot(revision: number): ClusterView {
    return makeView({ selfName: this.selfName, nodes: [...this.nodes.values()], services: this.services, endpointSlices: this.endpointSlices, revision });
  }

  private emit(): void {
    this.view = this.snapshot(this.view.revision + 1);
    this.onChange?.(this.view);
  }
}
