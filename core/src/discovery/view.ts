import type { AddressPlan, ClusterView, EndpointSliceInfo, NodeInfo, ServiceInfo } from '../api/cluster.js';

/** The annotation that places a node in a location. */
export const LOCATION_ANNOTATION = 'weft.io/location';
/** The well-known label used when the annotation is absent. */
export const REGION_LABEL = 'topology.kubernetes.io/region';

/** A node's location: the `weft.io/location` annotation, else the region label. */
export function locationOf(labels: Readonly<Record<string, string>>, annotations: Readonly<Record<string, string>>): string | undefined {
  const value = annotations[LOCATION_ANNOTATION] ?? labels[REGION_LABEL];
  return value === undefined || value === '' ? undefined : value;
}

/** No declared plan: nothing is checked against networks, only against the nodes' own claims. */
export const NO_ADDRESS_PLAN: AddressPlan = Object.freeze({ podNetworks: [], serviceNetworks: [], underlayNetworks: [] });

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Builds an immutable, sorted snapshot; `self` is looked up by name among `nodes` (or added as given). */
export function makeView(input: {
  selfName: string;
  nodes: readonly NodeInfo[];
  services?: readonly ServiceInfo[] | undefined;
  endpointSlices?: readonly EndpointSliceInfo[] | undefined;
  revision: number;
  fallbackSelf?: NodeInfo;
  /** Who dated the nodes (ClusterView.datedBy); `cluster` unless the source dates them itself. */
  datedBy?: 'cluster' | 'agent';
}): ClusterView {
  const nodes = [...input.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let self = nodes.find((n) => n.name === input.selfName);
  if (!self) {
    self = input.fallbackSelf ?? bareNode(input.selfName);
    nodes.push(self);
    nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
  return deepFreeze({
    self,
    nodes,
    ...(input.services ? { services: [...input.services] } : {}),
    ...(input.endpointSlices ? { endpointSlices: [...input.endpointSlices] } : {}),
    revision: input.revision,
    addressPlan: NO_ADDRESS_PLAN,
    claimProblems: [],
    datedBy: input.datedBy ?? 'cluster',
  });
}

/** A node known by name only. */
export function bareNode(name: string): NodeInfo {
  return { name, internalAddresses: [], externalAddresses: [], podCIDRs: [], labels: {}, annotations: {}, ready: true, location: undefined, createdAt: 0 };
}
