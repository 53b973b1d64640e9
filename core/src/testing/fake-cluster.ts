import type { EndpointSliceInfo, NodeInfo, ServiceInfo } from '../api/cluster.js';
import { MemoryNodeSource } from '../discovery/memory-source.js';
import { bareNode, locationOf } from '../discovery/view.js';

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
export class FakeCluster extends MemoryNodeSource {
  private isSynced = true;

  constructor(selfName: string, nodes: readonly NodeInit[] = []) {
    super(selfName, nodes.map(makeNode));
  }

  override synced(): boolean {
    return this.isSynced;
  }

  /** Makes the source report itself unsynced (as during a first list that has not finished). */
  setSynced(synced: boolean): void {
    this.isSynced = synced;
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
}
