
/** What a plugin can ask the core to discover for it, besides its own node. */
export type Watchable = 'nodes' | 'services' | 'endpointslices';

/** One node of the cluster, as every discovery source reports it. Immutable. */
export interface NodeInfo {
  readonly name: string;
  /** Internal addresses (IPv4 and IPv6), in the order the source reported them. */
  readonly internalAddresses: readonly string[];
  /** External (public) addresses, IPv4 and IPv6. */
  readonly externalAddresses: readonly string[];
  /** Every pod CIDR of the node (dual stack: one per family). */
  readonly podCIDRs: readonly string[];
  /**
   * The node's labels. Of the other nodes, the `kubernetes` and `directory` sources keep only those some enabled
   * plugin reads (the union of the plugins' `reads.labels`; all when one did not narrow them); the own node keeps all.
   */
  readonly labels: Readonly<Record<string, string>>;
  /** The node's annotations, kept the same way as {@link NodeInfo.labels} (by `reads.annotations`). */
  readonly annotations: Readonly<Record<string, string>>;
  /** The node's Ready condition; `true` when the source has no notion of readiness. */
  readonly ready: boolean;
  /** `weft.io/location` annotation, else the `topology.kubernetes.io/region` label, else undefined. */
  readonly location: string | undefined;
  /**
   * When the cluster first knew this node, in milliseconds since the epoch: the API server's
   * `metadata.creationTimestamp` (which no node can set); in the `directory` source, when this agent first saw the
   * node's document (persisted in its state directory); `0` for nodes the config declares. Between two nodes that
   * claim the same thing, the older keeps it ({@link olderClaim}); never the name that sorts first.
   */
  readonly createdAt: number;
}

/**
 * The cluster's declared address plan (the `cluster` section of the config), as canonical CIDRs. A node's claims are
 * checked against it before any plugin sees them.
 */
export interface AddressPlan {
  /** Where every pod CIDR must lie (kube-controller-manager's `--cluster-cidr`); empty: not declared. */
  readonly podNetworks: readonly string[];
  /** Service networks (`--service-cluster-ip-range`): no pod CIDR may overlap them. */
  readonly serviceNetworks: readonly string[];
  /** The nodes' own networks, where known: no pod CIDR may overlap them. */
  readonly underlayNetworks: readonly string[];
}

/**
 * A node's claim that the core refused, or kept against another node's. Plugins see only what was not refused
 * (a refused pod CIDR is not in the node's `podCIDRs`); these say what was left out and why.
 */
export interface ClaimProblem {
  /** The node that made the claim. */
  readonly node: string;
  /** What it claimed: one of its pod CIDRs, one of its addresses, or a place in the view at all (over the limit). */
  readonly field: 'podCIDR' | 'address' | 'node';
  /** The claimed value as the node wrote it (cut to 100 characters). */
  readonly value: string;
  /** `refused`: left out of the view; `contested`: kept, and another node's claim to it was refused. */
  readonly outcome: 'refused' | 'contested';
  readonly reason: string;
}

/** A port of a Service. */
export interface ServicePort {
  readonly name?: string;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly port: number;
}

/** The part of a Kubernetes Service weft's plugins read. */
export interface ServiceInfo {
  readonly namespace: string;
  readonly name: string;
  readonly annotations: Readonly<Record<string, string>>;
  readonly clusterIPs: readonly string[];
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
  readonly ports: readonly ServicePort[];
  /** `metadata.uid`: a re-created Service has a new one. Absent where the source has none (a node document). */
  readonly uid?: string;
  /**
   * When the cluster made the Service, in ms since the epoch (`metadata.creationTimestamp`, which no client sets);
   * absent where the source has none. Between two Services that claim one thing, the older keeps it.
   */
  readonly createdAt?: number;
}

/** One endpoint of an EndpointSlice. */
export interface EndpointInfo {
  readonly addresses: readonly string[];
  readonly ready: boolean;
  /** `conditions.serving`: able to take traffic, also while terminating. Absent: as {@link EndpointInfo.ready}. */
  readonly serving?: boolean;
  /** `conditions.terminating`: its pod is going away (draining). Absent: false. */
  readonly terminating?: boolean;
  readonly nodeName?: string;
  readonly targetPod?: { readonly namespace: string; readonly name: string };
}

/** The part of a `discovery.k8s.io/v1` EndpointSlice weft's plugins read. */
export interface EndpointSliceInfo {
  readonly namespace: string;
  readonly name: string;
  /** The Service this slice belongs to (its `kubernetes.io/service-name` label). */
  readonly serviceName: string;
  readonly addressType: 'IPv4' | 'IPv6' | 'FQDN';
  readonly endpoints: readonly EndpointInfo[];
}

/**
 * An immutable snapshot of the cluster as the agent last saw it. Plugins never see a half-updated view: a new
 * snapshot replaces the old one whole.
 */
export interface ClusterView {
  /** This agent's own node. */
  readonly self: NodeInfo;
  /** Every node, including self, sorted by name. */
  readonly nodes: readonly NodeInfo[];
  /** Services, present only when a loaded plugin watches `services`. */
  readonly services?: readonly ServiceInfo[];
  /** EndpointSlices, present only when a loaded plugin watches `endpointslices`. */
  readonly endpointSlices?: readonly EndpointSliceInfo[];
  /** Increases with every new snapshot; equal revisions mean equal views. */
  readonly revision: number;
  /** The declared address plan the nodes' claims were checked against. */
  readonly addressPlan: AddressPlan;
  /** What the core refused of the nodes' claims, and what it kept against a rival claim, sorted by node. */
  readonly claimProblems: readonly ClaimProblem[];
  /**
   * Who dated the nodes ({@link NodeInfo.createdAt}): `cluster` when one clock dates them for every agent alike
   * (the Kubernetes API server; the config for `static` nodes), `agent` when each agent dates them itself (the
   * `directory` source: when it first saw each document). An order that every agent must agree on (a leader) may
   * use ages only when they are the cluster's; a contest between two claims may use them either way.
   */
  readonly datedBy: 'cluster' | 'agent';
}

/**
 * Which of two nodes keeps something both claim (an address, a pod CIDR, a key): the one the cluster knew first
 * ({@link NodeInfo.createdAt}). `undefined` when they are equally old: then neither keeps it, so that no node can
 * win a claim by its name or by timing its registration.
 */
export function olderClaim<N extends Pick<NodeInfo, 'createdAt'>>(a: N, b: N): N | undefined {
  if (a.createdAt === b.createdAt) return undefined;
  return a.createdAt < b.createdAt ? a : b;
}

/** Annotation values to publish on the own node: a string sets the key, `null` removes it. */
export type AnnotationPatch = Readonly<Record<string, string | null>>;

/**
 * Where the agent's view of the cluster comes from (Kubernetes informers, a directory of node documents, or the
 * config itself). The core owns the only instance; plugins see it through {@link ClusterService}.
 */
export interface NodeSource {
  /**
   * Starts watching. Resolves once the first full view is known (the source is "synced"). `reads` is what the enabled
   * plugins read of a node (the union of their `reads`): a source should leave the other annotations and labels out of
   * every node but the own one, so that a change to them is no change of the view (`nodeNarrower` does it). A source
   * that keeps them is correct too, only dearer: each plugin's own `reads` still decides whether it runs.
   */
  start(watches: ReadonlySet<Watchable>, onChange: (view: ClusterView) => void, reads?: NodeReads): Promise<void>;
  /** The latest view; only valid after `start` resolved. */
  current(): ClusterView;
  /** Whether the source has a complete view (it stays true while an API outage keeps the last view). */
  synced(): boolean;
  /** Merges this patch into the own node's annotations (one write, only when something changed). */
  publish(patch: AnnotationPatch): Promise<void>;
  /** Stops watching; idempotent. */
  stop(): Promise<void>;
  /**
   * Whether the source is in touch with where its facts come from (the Kubernetes API); when not, since when (unix
   * ms) it has served the last view. Optional: a source without a remote end is always connected.
   */
  health?(): { readonly connected: boolean; readonly since?: number };
}

/** The fields of a node a plugin may say it reads, besides its name, annotations and labels. */
export const NODE_FIELDS = ['internalAddresses', 'externalAddresses', 'podCIDRs', 'ready', 'location', 'createdAt'] as const;
export type NodeField = (typeof NODE_FIELDS)[number];

/**
 * The part of each node a plugin reads. The core runs the plugin for a cluster change only when that part of some
 * node changed, or a node came or went (or, for what the plugin watches, a Service or EndpointSlice changed): an
 * annotation another plugin publishes, or a kubelet's label, then costs the plugin nothing.
 */
export interface NodeReads {
  /** Annotation keys; one ending in `*` is a prefix (`weft.io/mesh-*`). Absent: every annotation. */
  readonly annotations?: readonly string[];
  /** Label keys, the same way. Absent: every label. */
  readonly labels?: readonly string[];
  /** The node fields read. Absent: all of them. */
  readonly fields?: readonly NodeField[];
}
