/**
 * What weft's service-tunnel plugins (`gre-tunnel` and `mpls-lwtunnel`) share: the tunnelled Services with
 * their VIPs and endpoints checked, and the Maglev table that maps a flow's bucket to an endpoint alike on every
 * ingress node. Plugins never import each other; both depend on this package.
 */
export { changedBuckets, DEFAULT_TABLE_SIZE, isPrime, MAX_TABLE_SIZE, maglevTable, type MaglevTable, shares, tableSeed } from './maglev.js';
export { AFFINITY_ANNOTATION, type Affinity, DRAIN_ANNOTATION, type Encap, ENCAP_ANNOTATION, ENCAPS, LIMITS, type RefusedService, TUNNEL_ANNOTATION, type TunnelEndpoint, type TunnelService, tunnelServices } from './services.js';
export { addressesOf, DEFAULT_ROOTS, listNetns, MAX_NAMESPACES, type Netns, type NetnsRoots, parseFibTrie, parseIfInet6, PodNetnsFinder, type ReadNamed } from './netns.js';
export { allocateSlots, classificationTable, type ClassifiedVip, jhashSeed, markLayout, markText, type PlannedEndpoint, type SlotRecord } from './classify.js';
export {
  checkClassificationConfig,
  classificationConfig,
  type ClassificationSettings,
  type IngressClassification,
  type IngressVip,
  nextDrainEnd,
  planClassification,
  TableMemory,
  vipStatus,
} from './ingress.js';
export { type EndpointPod, localEndpoints, setUpPods, SoonRetry } from './pods.js';
export { MAX_SAVED_ENTRIES, podsFromJson, slotsFromJson, sortedObject } from './state.js';
