import type { ClusterView, EndpointSliceInfo, NodeInfo, ServiceInfo } from '../api/cluster.js';
import { claimRules, vetClaims } from '../discovery/claims.js';
import { CoreConfigSchema, type ClusterSettings } from '../config/schema.js';
import { makeView } from '../discovery/view.js';

/**
 * The view an agent hands its plugins, for testing a pure planner: the nodes sorted, `self` found among them, and
 * every node's claims checked as the agent checks them, under the `cluster` section given (defaults otherwise).
 * A claim the agent would refuse is not in it; `claimProblems` says what was refused and why.
 *
 * @example
 * const view = vettedView({ self: 'a', nodes: [makeNode({ name: 'a', podCIDRs: ['10.4.1.0/24'] })], cluster: { podNetworks: ['10.4.0.0/16'] } });
 */
export function vettedView(input: {
  readonly self: string;
  readonly nodes: readonly NodeInfo[];
  readonly services?: readonly ServiceInfo[];
  readonly endpointSlices?: readonly EndpointSliceInfo[];
  readonly cluster?: Partial<ClusterSettings>;
  readonly revision?: number;
  /** Who dated the nodes: `cluster` (the API server, the default) or `agent` (the directory source). */
  readonly datedBy?: 'cluster' | 'agent';
}): ClusterView {
  const cluster = CoreConfigSchema.shape.cluster.parse(input.cluster ?? {});
  const view = makeView({ selfName: input.self, nodes: input.nodes, services: input.services, endpointSlices: input.endpointSlices, revision: input.revision ?? 1, datedBy: input.datedBy ?? 'cluster' });
  return vetClaims(view, claimRules(cluster));
}
