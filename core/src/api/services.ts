import type { Logger } from 'pino';
import type { Counter, CounterConfiguration, Gauge, GaugeConfiguration, Histogram, HistogramConfiguration } from 'prom-client';
import type { AnnotationPatch, ClusterView } from './cluster.js';
import type { ApplyResult } from '../kernel/driver.js';
import type { Capability } from '../kernel/capabilities.js';
import type { DesiredState, InterfaceInfo, KernelOwner, NftCounter, NftTable, WireGuardDeviceStatus } from '../kernel/model.js';

/**
 * A typed reference to a service. The runtime registers each service under `ref.token` in a tsyringe container,
 * one child container per plugin, so that every plugin gets its own logger child, metric label and state directory.
 */
export interface ServiceRef<T> {
  /** Human-readable id, used in errors (`core.logger`). */
  readonly id: string;
  /** The tsyringe injection token. `Symbol.for` so that two copies of `@weft/core` agree on it. */
  readonly token: symbol;
  /** Phantom field carrying the service type; never set. */
  readonly __type?: T;
}

/** Creates a service reference; `id` must be unique across weft and its plugins. */
export function createServiceRef<T>(id: string): ServiceRef<T> {
  return Object.freeze({ id, token: Symbol.for(`weft.service.${id}`) });
}

/**
 * A dependency on a service another plugin provides, as `deps` declares it: `{ overlay: overlayRef }` needs it (the
 * config is refused when no enabled plugin provides it); `{ overlay: optionalService(overlayRef) }` takes it when
 * there is one and `undefined` otherwise.
 */
export interface ServiceDependency<T> {
  readonly ref: ServiceRef<T>;
  readonly optional: boolean;
}

/** An optional dependency: the plugin gets `undefined` when no enabled plugin provides `ref` (or its setup failed). */
export function optionalService<T>(ref: ServiceRef<T>): ServiceDependency<T> {
  return Object.freeze({ ref, optional: true });
}

/** What `deps` may hold: per name, a service ref (required) or an {@link optionalService}. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a map of refs of any service type
export type DependencyDeclaration = Readonly<Record<string, ServiceRef<any> | ServiceDependency<any>>>;

/** The values `setup` gets for its declared `deps`: each service, or `T | undefined` for an optional one. */
export type ResolvedDependencies<D extends DependencyDeclaration> = {
  readonly [K in keyof D]: D[K] extends ServiceDependency<infer T> ? T | undefined : D[K] extends ServiceRef<infer T> ? T : never;
};

/** The ref and optionality of one `deps` entry. */
export function dependencyOf(entry: ServiceRef<unknown> | ServiceDependency<unknown>): ServiceDependency<unknown> {
  return 'ref' in entry ? entry : { ref: entry, optional: false };
}

/** Metrics for one plugin. Every series it creates carries the label `plugin="<name>"`. */
export interface PluginMetrics {
  /** Get-or-create a counter (a second call with the same name returns the first one). */
  counter<L extends string = string>(config: Omit<CounterConfiguration<L>, 'registers'>): Counter<L>;
  /** Get-or-create a gauge. */
  gauge<L extends string = string>(config: Omit<GaugeConfiguration<L>, 'registers'>): Gauge<L>;
  /** Get-or-create a histogram. */
  histogram<L extends string = string>(config: Omit<HistogramConfiguration<L>, 'registers'>): Histogram<L>;
}

/** What a plugin's HTTP handler sees of a request. */
export interface HttpRequest {
  readonly method: string;
  /** The full request URL (host from the Host header). */
  readonly url: URL;
  /** The part of the path after `/api/<plugin>`. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The request body, read whole (limited to 1 MiB). */
  readonly body: Buffer;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
}

/** What a handler answers: `json` is serialised, `body` sent as it is. */
export interface HttpReply {
  readonly status?: number;
  readonly json?: unknown;
  readonly body?: string | Buffer;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** An HTTP handler of a plugin. A thrown error answers 500 with its message. */
export type HttpHandler = (request: HttpRequest) => HttpReply | Promise<HttpReply>;

/** Routes a plugin serves under `/api/<plugin>/`. */
export interface PluginHttp {
  /**
   * Serves `handler` for `method` at `/api/<plugin><path>`; `path` starts with `/` (`/` itself serves
   * `/api/<plugin>/`). Registering the same method and path twice throws `WEFT_REGISTRATION_CONFLICT`.
   */
  readonly route: (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, handler: HttpHandler) => void;
  /** The base URL path of this plugin's routes, `/api/<plugin>`. */
  readonly basePath: string;
}

/** A private directory per plugin that survives restarts (keys, allocated addresses). */
export interface PluginState {
  /** Absolute path of the directory (created on first write, mode 0700). */
  readonly dir: string;
  /**
   * Reads a file of the directory; `undefined` when it does not exist. Any other failure names the file's path.
   * With `secret: true` (a key), a file that is not a regular file is an error, and one that its group or others
   * may read or write is made 0600 first, with a warning in the log naming the path and the mode it had.
   */
  readFile(name: string, options?: { readonly secret?: boolean }): Promise<Buffer | undefined>;
  /** Writes a file atomically (temp file + rename), by default with mode 0600. */
  writeFile(name: string, data: string | Buffer, options?: { mode?: number }): Promise<void>;
  /** Removes a file; no error when it does not exist. */
  removeFile(name: string): Promise<void>;
}

/** Read access to the cluster as the core last saw it. */
export interface ClusterService {
  /** The latest snapshot. */
  current(): ClusterView;
}

/** Publishes annotations on the own node. Values from all plugins are merged into one write. */
export type PublishService = (patch: AnnotationPatch) => Promise<void>;

/** Asks the scheduler for a reconcile of this plugin (merged with other pending triggers). */
export type TriggerService = (reason: string) => void;

/**
 * The only path to the kernel. Each plugin's service is bound to its owner (the `kernel` ownership it declares)
 * and to the agent's network namespace.
 */
export interface KernelService {
  /** This plugin's ownership, or undefined when it declared none (then `apply` throws). */
  readonly owner: KernelOwner | undefined;
  /**
   * Validates `desired`, reads what the kernel has for this owner, and applies the difference in one batch;
   * resolves with the changes made (none when nothing differs). Under `weft plan` it changes nothing and records
   * the changes. Throws `WEFT_KERNEL_INPUT` (bad value, nothing applied) or `WEFT_KERNEL_APPLY` (a command failed).
   */
  apply(desired: DesiredState): Promise<ApplyResult>;
  /**
   * Resolves when this kernel and machine have every capability; otherwise throws `WEFT_KERNEL_UNSUPPORTED` with
   * what is missing and how to fix it (as `weft doctor` says). Call it in `setup`.
   */
  require(...needs: Capability[]): Promise<void>;
  /**
   * Run-time state of one of this plugin's WireGuard devices (`wg show DEV dump`): per peer the endpoint its packets
   * last came from, the latest handshake and the bytes moved; `undefined` when the device does not exist. Read-only;
   * the device must carry the plugin's link prefix.
   */
  wireguardStatus(device: string): Promise<WireGuardDeviceStatus | undefined>;
  /** The namespace's interfaces, owned or not, with MTU and addresses (what a plugin may need of the underlay). Read-only. */
  interfaces(): Promise<readonly InterfaceInfo[]>;
  /**
   * The kernel of another network namespace on this node — a pod's — by its path: `/run/netns/NAME` or
   * `/proc/PID/ns/net`. The same ownership, diff, batched apply, metrics and `weft plan` recording, there. A plugin
   * that set things up in a namespace applies an empty desired state there to remove them (a namespace that is
   * gone took them with it). Throws `WEFT_KERNEL_INPUT` for a path that is not absolute, has `..` or odd characters.
   */
  namespace(path: string): NamespaceKernel;
  /**
   * The named counters (packets, bytes) of one of this plugin's nftables tables, by counter name; empty when the
   * table does not exist. Read-only.
   */
  nftCounters(family: NftTable['family'], table: string): Promise<ReadonlyMap<string, NftCounter>>;
}

/** {@link KernelService.namespace}: a plugin's kernel service in another network namespace. */
export interface NamespaceKernel {
  /** The namespace's path, as given. */
  readonly path: string;
  /** As {@link KernelService.apply}, in that namespace (fails when the namespace is gone). */
  apply(desired: DesiredState): Promise<ApplyResult>;
  /** As {@link KernelService.interfaces}, in that namespace. */
  interfaces(): Promise<readonly InterfaceInfo[]>;
}

/** The namespace paths {@link KernelService.namespace} accepts: absolute, plain characters, no `..` (checked apart). */
export const NAMESPACE_PATH = /^\/[A-Za-z0-9_.][A-Za-z0-9_./-]{0,254}$/;

/** The core services every plugin can resolve. */
/** A timer a {@link Clock} set; pass it back to `clearTimeout`. */
export interface ClockTimer {
  /** Lets the process exit while the timer is pending (Node's timers; a fake clock's need not have it). */
  unref?(): unknown;
}

/**
 * Time, as the agent keeps it: the system's in production, a fake one a test moves on (`FakeClock` in
 * `@weft/core/testing`). The agent's reconcile loops (debounce, resync, retry backoff, `requeueAfter`, the run
 * timeout) run on the same clock, so a test can move a plugin through an hour of resyncs in no time.
 */
export interface Clock {
  /** Milliseconds since the epoch, as `Date.now()`. */
  now(): number;
  /** Milliseconds on a clock that never goes back, as `performance.now()`. */
  monotonic(): number;
  /** Calls `callback` once after `ms` milliseconds. */
  setTimeout(callback: () => void, ms: number): ClockTimer;
  /** Cancels a timer; no error for one that fired, was cleared, or is undefined. */
  clearTimeout(timer: ClockTimer | undefined): void;
}

/** A service replaced by a test: `mockService(ref, value)` of `@weft/core/testing` makes one. */
export interface ServiceOverride<T = unknown> {
  readonly ref: ServiceRef<T>;
  readonly value: T;
}

export const coreServices = {
  /** The plugin's own pino child logger (`plugin` field set). */
  logger: createServiceRef<Logger>('core.logger'),
  /** The plugin's metrics (series labelled `plugin`). */
  metrics: createServiceRef<PluginMetrics>('core.metrics'),
  /** The cluster view. */
  cluster: createServiceRef<ClusterService>('core.cluster'),
  /** Annotation publishing on the own node. */
  publish: createServiceRef<PublishService>('core.publish'),
  /** The plugin's state directory. */
  state: createServiceRef<PluginState>('core.state'),
  /** The plugin's HTTP routes. */
  http: createServiceRef<PluginHttp>('core.http'),
  /** Triggers a reconcile of this plugin. */
  trigger: createServiceRef<TriggerService>('core.trigger'),
  /** The plugin's validated config section. */
  config: createServiceRef<unknown>('core.config'),
  /** The plugin's name. */
  pluginName: createServiceRef<string>('core.pluginName'),
  /** Aborted when the plugin is being stopped or reconfigured. */
  lifetime: createServiceRef<AbortSignal>('core.lifetime'),
  /** The kernel, bound to the plugin's ownership. */
  kernel: createServiceRef<KernelService>('core.kernel'),
  /** True under `weft plan`: make no change outside the kernel service (which only records). */
  dryRun: createServiceRef<boolean>('core.dryRun'),
  /** The agent's clock. */
  clock: createServiceRef<Clock>('core.clock'),
} as const;

const CORE_SERVICE_IDS: ReadonlySet<string> = new Set(Object.values(coreServices).map((r) => r.id));

/** True for a ref of {@link coreServices}: every plugin has those, from its own container; no plugin provides one. */
export function isCoreService(ref: ServiceRef<unknown>): boolean {
  return CORE_SERVICE_IDS.has(ref.id);
}
