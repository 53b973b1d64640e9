import type { EndpointSliceInfo, NodeInfo, ServiceInfo } from '../api/cluster.js';
import { MemoryNodeSource } from '../discovery/memory-source.js';
import { bareNode, locationOf } from '../discovery/view.js';

/**
 * A node for a test: only `name` is required; the rest defaults to empty and Ready. Without `createdAt` a node is
 * as old as its place among the nodes the fake cluster was given (1, 2, …), or newer than all of them when added later.
 */
export type NodeInit = Partial<Omit<NodeInfo, 'location'>> & { readonly name: string };

/** Fills a {@link NodeInit} into a full node. */
export function makeNode(init: NodeInit, createdAt = 0): NodeInfo {
  const base = { ...bareNode(init.name), createdAt, ...init };
  return { ...base, location: locationOf(base.labels, base.annotations) };
}

/**
 * An in-memory discovery source for tests: change nodes, services and slices at will; every change publishes a new
 * snapshot and triggers the plugins, as a real source does. Published annotations land on the own node.
 */
export class FakeCluster extends MemoryNodeSource {
  private isSynced = true;

  private age: number;

  constructor(selfName: string, nodes: readonly NodeInit[] = []) {
    super(
      selfName,
      nodes.map((n, i) => makeNode(n, i + 1)),
    );
    this.age = nodes.length;
  }

  override synced(): boolean {
    return this.isSynced;
  }

  /** Makes the source report itself unsynced (as during a first list that has not finished). */
  setSynced(synced: boolean): void {
    this.isSynced = synced;
  }

  /** Adds or replaces a node (a replaced node keeps its age unless `createdAt` is given). */
  setNode(init: NodeInit): void {
    const known = this.nodes.get(init.name);
    this.nodes.set(init.name, makeNode(init, known?.createdAt ?? (this.age += 1)));
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
}
