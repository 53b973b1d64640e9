/**
 * `@weft/core`: the public API for weft plugins. Everything a plugin may use is exported here by name; nothing
 * else in this package is public.
 */
export {
  type AddressPlan,
  type AnnotationPatch,
  type ClaimProblem,
  type ClusterView,
  type EndpointInfo,
  type EndpointSliceInfo,
  type NodeInfo,
  type NodeSource,
  olderClaim,
  type ServiceInfo,
  type ServicePort,
  type Watchable,
} from './api/cluster.js';
export { NODE_FIELDS, type NodeField, nodeNarrower, type NodeReads } from './discovery/reads.js';
export { describeError, ERROR_CODES, isWeftError, TerminalError, WeftError, type WeftErrorCode } from './api/errors.js';
export {
  definePlugin,
  isPluginDefinition,
  PLUGIN_API_VERSION,
  type PluginDeclaration,
  type PluginDefinition,
  type PluginInstance,
  type KernelOwnership,
  type LabNodeFacts,
  type PluginCommand,
  type PluginLabDefaults,
  type PluginServices,
  type PluginStatusReport,
  type ReconcileContext,
  type ReconcileOutcome,
  type StopContext,
} from './api/plugin.js';
export { type OverlayAddresses, type OverlayService, overlayServiceRef } from './api/overlay.js';
export { cidr, describeValue, duration, intInRange, ipAddress, LABEL_KEY, LABEL_VALUE, nodeSelector, parseCIDR, parseDuration, port, selectsNode, z } from './api/schema.js';
export {
  type Clock,
  type ClockTimer,
  type ClusterService,
  coreServices,
  createServiceRef,
  type DependencyDeclaration,
  type HttpHandler,
  type HttpReply,
  type HttpRequest,
  type KernelService,
  NAMESPACE_PATH,
  type NamespaceKernel,
  type PluginHttp,
  type PluginMetrics,
  type PluginState,
  optionalService,
  type PublishService,
  type ResolvedDependencies,
  type ServiceDependency,
  type ServiceOverride,
  type ServiceRef,
  type TriggerService,
} from './api/services.js';
export type { Logger } from './observe/logger.js';
export { type AgentTarget, httpGet, HttpGetError, type HttpGetOptions } from './observe/http-get.js';
export type {
  Address,
  BridgeLink,
  InterfaceInfo,
  WireGuardDeviceStatus,
  WireGuardPeerStatus,
  Change,
  DesiredState,
  DummyLink,
  FdbEntry,
  GreLink,
  IpipLink,
  KernelOwner,
  Link,
  LinkKind,
  Neighbour,
  NftCounter,
  NftElementChange,
  NftTable,
  ObjectKind,
  Route,
  Rule,
  Sysctl,
  VethLink,
  VxlanLink,
  WireGuardDevice,
  WireGuardLink,
  WireGuardPeer,
} from './kernel/model.js';
export { type ApplyResult, KernelApplyError } from './kernel/driver.js';
export { canonicalEndpoint, isInterfaceName, isWireGuardKey, KernelInputError } from './kernel/normalize.js';
export {
  addressAt,
  bigIntToIp,
  canonicalIP,
  canonicalNetwork,
  type Family,
  familyOf,
  formatNetwork,
  hostNetwork,
  ipToBigInt,
  joinHostPort,
  type Network,
  networkContains,
  networkSize,
  networksOverlap,
  offsetOf,
  parseNetwork,
} from './kernel/ip.js';
export { generateWireGuardKeyPair, wireGuardPublicKey } from './kernel/wgkeys.js';
export type { Capability } from './kernel/capabilities.js';
