import { pluginReads } from '../api/plugin.js';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ClusterView, NodeSource, Watchable } from '../api/cluster.js';
import { describeError, WeftError } from '../api/errors.js';
import { type Clock, dependencyOf, type ServiceOverride, type ServiceRef } from '../api/services.js';
import type { PluginEntry, WeftConfig } from '../config/load.js';
import { type CoreConfig, parseListen } from '../config/schema.js';
import { DirectoryNodeSource } from '../discovery/directory-source.js';
import { KubernetesNodeSource } from '../discovery/kubernetes-source.js';
import { ClaimChecker, claimRules, type ClaimRules } from '../discovery/claims.js';
import { AnnotationPublisher } from '../discovery/publisher.js';
import { type NodeReads, unionReads } from '../discovery/reads.js';
import { StaticNodeSource } from '../discovery/static-source.js';
import { type HttpLimits, type HttpRefusal, HttpServer, type Readiness } from '../observe/http.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { MetricsHub } from '../observe/metrics.js';
import { agentServices } from './agent-services.js';
import { createRootContainer, type DependencyContainer, provide } from './container.js';
import { PluginHost, type PluginStatus } from './plugin-host.js';
import { WEFT_VERSION } from './version.js';
import type { KernelBackend } from '../kernel/driver.js';
import { Iproute2Kernel } from '../kernel/iproute2.js';
import type { Change } from '../kernel/model.js';
import { backoffDelay } from '../reconcile/backoff.js';

/** Makes the discovery source the config asks for. */
export type NodeSourceFactory = (core: CoreConfig, selfName: string, logger: Logger, metrics?: MetricsHub) => NodeSource;

/** The built-in discovery sources. */
export const defaultNodeSourceFactory: NodeSourceFactory = (core, selfName, logger, metrics) => {
  switch (core.discovery.source) {
    case 'static':
      return new StaticNodeSource(selfName, core.discovery.static.nodes);
    case 'directory':
      return new DirectoryNodeSource(selfName, core.discovery.directory, logger.child({ discovery: 'directory' }), {
        firstSeenFile: join(core.node.stateDir, 'discovery', 'first-seen.json'),
      });
    case 'kubernetes':
      return new KubernetesNodeSource(selfName, core.discovery.kubernetes, logger.child({ discovery: 'kubernetes' }), metrics);
  }
};

export interface AgentOptions {
  /** Root logger; default one built from the config's `log` section. */
  readonly logger?: Logger;
  readonly nodeSourceFactory?: NodeSourceFactory;
  readonly env?: NodeJS.ProcessEnv;
  /** Random source for jitter (tests fix it). */
  readonly random?: () => number;
  /** Register Node's default process metrics (default true). */
  readonly defaultMetrics?: boolean;
  /** How long stopping waits for each plugin's run in progress and its `stop` (default 10 s). */
  readonly stopTimeoutMs?: number;
  /** The kernel backend; default iproute2 in the namespace `kernel.netns` names. */
  readonly kernel?: KernelBackend;
  /** `weft plan`: plugins run against a kernel that only records; nothing outside changes. */
  readonly dryRun?: boolean;
  /** Under `dryRun`, receives each plugin's planned kernel changes. */
  readonly recordPlan?: (plugin: string, changes: readonly Change[]) => void;
  /** The clock of the plugins' reconcile loops and their `clock` service (default the system's); tests move a fake one. */
  readonly clock?: Clock;
  /** Services that replace the core's or a plugin's (tests: `mockService`). */
  readonly services?: readonly ServiceOverride[];
}

/** The iproute2 kernel of the namespace the config names. */
export function kernelFor(core: CoreConfig): KernelBackend {
  const netns = core.kernel.netns;
  const options = { scratchDir: scratchDir(core), procSys: core.kernel.procSys, monitor: true };
  if (netns === null) return new Iproute2Kernel({ kind: 'own' }, options);
  return new Iproute2Kernel(netns.startsWith('/') ? { kind: 'path', path: netns } : { kind: 'named', name: netns }, options);
}

/**
 * Where the kernel driver writes key material for the moment `wg` reads it: under the state directory (never a
 * shared /tmp), emptied at every start, so a kill -9 leaves nothing behind for long.
 */
export function scratchDir(core: CoreConfig): string {
  return join(core.node.stateDir, 'tmp');
}

/** The node name: `node.name`, else `$NODE_NAME`, else the host name. */
export function resolveNodeName(core: CoreConfig, env: NodeJS.ProcessEnv): string {
  return core.node.name ?? (env.NODE_NAME || hostname());
}

function sameJSON(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The composition root: one agent per node. It owns the container, the discovery source, the HTTP server and one
 * {@link PluginHost} per enabled plugin, and applies new configs without a restart.
 */
export class Agent {
  readonly logger: Logger;
  readonly metrics: MetricsHub;
  readonly http: HttpServer;
  private readonly root: DependencyContainer;
  private config: WeftConfig;
  private kernel: KernelBackend;
  private source: NodeSource | undefined;
  /** One patch of the own node for what every plugin publishes. */
  readonly publisher: AnnotationPublisher;
  private hosts: PluginHost[] = [];
  private started = false;
  private stopping: Promise<void> | undefined;
  /** Rejects (with {@link StartInterrupted}) as soon as stop() is called: start() races every step against it. */
  private readonly stopAsked = interruption();
  /** The node source being started (stop() stops it even before its first view). */
  private pendingSource: NodeSource | undefined;
  private serial: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<() => void>();
  private markStopped: () => void = () => undefined;
  /** Settles once {@link stop} has finished. */
  readonly stopped: Promise<void> = new Promise((resolve) => {
    this.markStopped = resolve;
  });
  private readonly setupFailures = new Map<string, number>();
  /** Services a test replaced, by ref id. */
  private readonly overrides: ReadonlyMap<string, ServiceOverride>;
  private readonly setupRetryTimers = new Map<string, NodeJS.Timeout>();
  /** HTTP refusals since the last log line about them. */
  private refusals: { counts: Partial<Record<HttpRefusal, number>>; loggedAt: number } = { counts: {}, loggedAt: -Infinity };
  /** Checks every node's claims before plugins see them (the `cluster` section). */
  private readonly claims: ClaimChecker;
  private rules: ClaimRules;

  constructor(
    config: WeftConfig,
    private readonly options: AgentOptions = {},
  ) {
    this.config = config;
    this.overrides = new Map((options.services ?? []).map((o) => [o.ref.id, o]));
    this.kernel = options.kernel ?? kernelFor(config.core);
    this.logger = options.logger ?? createLogger(config.core.log);
    this.metrics = new MetricsHub(WEFT_VERSION, { defaultMetrics: options.defaultMetrics ?? true });
    this.http = new HttpServer({
      logger: this.logger,
      metrics: () => this.metrics.exposition(),
      readiness: () => this.readiness(),
      claims: () => ({ addressPlan: this.rules.plan, problems: this.source ? this.view().claimProblems : [] }),
      refused: (reason) => this.httpRefused(reason),
    });
    this.http.setLimits(httpLimits(config.core));
    this.rules = claimRules(config.core.cluster);
    this.claims = new ClaimChecker({
      added: (p) =>
        (p.outcome === 'refused' ? this.logger.warn.bind(this.logger) : this.logger.info.bind(this.logger))(
          { node: p.node, field: p.field, value: p.value, reason: p.reason },
          p.outcome === 'refused' ? "a node's claim refused" : "a node's claim kept against another's",
        ),
      cleared: (p) => this.logger.info({ node: p.node, field: p.field, value: p.value }, p.outcome === 'refused' ? "a node's claim no longer refused" : 'no longer contested'),
      counts: (refused) => {
        this.metrics.core.claimsRefused.reset();
        for (const [key, count] of refused) {
          const [node, field] = key.split('\0') as [string, string];
          this.metrics.core.claimsRefused.set({ node, field }, count);
        }
      },
    });
    this.publisher = new AnnotationPublisher({
      write: (patch) => {
        if (!this.source) throw new Error('discovery has not started');
        return this.source.publish(patch);
      },
      current: () => (this.source ? this.source.current().self.annotations : {}),
      connected: () => this.source?.health?.().connected ?? true,
      logger: this.logger,
    });
    this.root = createRootContainer();
    provide(this.root, agentServices.rootLogger, this.logger);
    provide(this.root, agentServices.metricsHub, this.metrics);
    provide(this.root, agentServices.httpServer, this.http);
  }

  /** This node's name. */
  get nodeName(): string {
    return resolveNodeName(this.config.core, this.options.env ?? process.env);
  }

  /** The config in force. */
  get currentConfig(): WeftConfig {
    return this.config;
  }

  /**
   * Starts the HTTP server, discovery and every plugin, in config order. A plugin whose setup fails aborts the
   * start (everything started is stopped again) unless it says `onBootFailure: continue`.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('agent already started');
    this.started = true;
    const { core } = this.config;
    this.logger.info({ version: WEFT_VERSION, node: this.nodeName, config: this.config.file, plugins: this.config.plugins.map((p) => p.name), uptimeMs: uptimeMs() }, 'weft starting');
    // Each step gives way to stop(): a SIGTERM while discovery waits for its first view, or while a plugin sets up,
    // stops the agent at once (start then rejects with StartInterrupted).
    const step = <T>(work: Promise<T>): Promise<T> => Promise.race([work, this.stopAsked.promise]);
    try {
      // What a killed agent left in the scratch directory (key files a `wg` was reading) goes first.
      if (!this.options.dryRun) await step(rm(scratchDir(core), { recursive: true, force: true }));
      // HTTP first: /healthz answers (and /readyz says why not ready) while discovery waits for its first view.
      await step(this.listen(core.http.listen));
      await step(this.listenSocket(core.http.socket));
      await step(this.startSource(core));
      for (const entry of this.config.plugins) await step(this.addPlugin(entry, 'boot'));
      for (const host of this.hosts) host.start();
      this.metrics.core.configReloadSuccessful.set(1);
      this.metrics.core.configReloadTimestamp.set(Date.now() / 1000);
      this.logger.info({ http: this.http.address(), uptimeMs: uptimeMs() }, 'weft started');
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /**
   * Applies a new, already validated config: plugins removed (their data plane cleaned up), added, or
   * reconfigured (stopped without cleanup and set up again); log, reconcile, HTTP and discovery settings follow.
   * Calls are serialised.
   */
  applyConfig(next: WeftConfig): Promise<void> {
    const run = this.serial.then(() => this.doApply(next));
    this.serial = run.catch(() => undefined);
    return run;
  }

  /** Records a refused config: the running one stays and the reload metric drops to 0. */
  configRefused(error: unknown): void {
    this.metrics.core.configReloadSuccessful.set(0);
    this.logger.error({ err: describeError(error) }, 'new config refused; the running config stays');
  }

  private async doApply(next: WeftConfig): Promise<void> {
    if (this.stopping) return;
    const prev = this.config;
    this.config = next;
    const core = next.core;
    if (!sameJSON(prev.core.log, core.log)) this.logger.level = core.log.level;
    if (!sameJSON(prev.core.cluster, core.cluster)) {
      this.rules = claimRules(core.cluster);
      if (this.source) {
        const view = this.view();
        for (const host of this.hosts) host.clusterChanged(view);
      }
    }
    const sourceChanged = !sameJSON(prev.core.node, core.node) || !sameJSON(prev.core.discovery, core.discovery);
    if (sourceChanged) {
      this.logger.info('discovery or node settings changed; restarting discovery');
      await this.source?.stop();
      await this.startSource(core);
    }
    this.http.setLimits(httpLimits(core));
    let refused: string | undefined;
    if (prev.core.http.listen !== core.http.listen) {
      try {
        await this.listen(core.http.listen);
      } catch (err) {
        // The server stays where it was; the rest of the new config still applies.
        refused = describeError(err);
        this.config = { ...next, core: { ...core, http: prev.core.http } };
        this.logger.error({ err: refused }, 'new http.listen refused; the server stays on its old address');
      }
    }

    if (prev.core.http.socket !== core.http.socket) {
      try {
        await this.listenSocket(core.http.socket);
      } catch (err) {
        refused = describeError(err);
        this.config = { ...this.config, core: { ...this.config.core, http: { ...this.config.core.http, socket: prev.core.http.socket } } };
        this.logger.error({ err: refused }, 'new http.socket refused; the old socket is gone');
      }
    }

    // The state directory holds the driver's scratch directory too.
    const kernelChanged = (!sameJSON(prev.core.kernel, core.kernel) || prev.core.node.stateDir !== core.node.stateDir) && this.options.kernel === undefined;
    if (kernelChanged) {
      this.kernel.close?.();
      this.kernel = kernelFor(core);
    }
    const stateDirChanged = prev.core.node.stateDir !== core.node.stateDir || kernelChanged;
    const wanted = new Map(next.plugins.map((p) => [p.name, p]));
    // Removed plugins go first, in reverse order, and clean up after themselves. A plugin that uses a service of one
    // that stops is set up again too (its service object is gone with its provider's setup).
    const changed = (host: PluginHost, entry: PluginEntry) =>
      host.status().phase === 'failed' || entry.fingerprint !== host.entry.fingerprint || entry.definition !== host.entry.definition || stateDirChanged;
    const stopping = new Set(
      this.hosts.filter((h) => {
        const e = wanted.get(h.name);
        return e === undefined || changed(h, e);
      }),
    );
    // A plugin added now whose service a running one takes as optional: that one is set up again to get it.
    const running = new Set(this.hosts.map((h) => h.name));
    const added = next.plugins.filter((p) => !running.has(p.name)).flatMap((p) => (p.definition.provides ?? []).map((r) => r.id));
    const dependents = this.dependentsOf(stopping, added);
    for (const host of [...this.hosts].reverse()) {
      const entry = wanted.get(host.name);
      if (entry === undefined) {
        this.logger.info({ plugin: host.name }, 'plugin removed from config; stopping it and cleaning up');
        await host.stop(true);
      } else if (host.status().phase === 'failed') {
        await host.stop(false); // set up again below, with the new config
      } else if (changed(host, entry)) {
        this.logger.info({ plugin: host.name }, 'plugin config changed; reconfiguring');
        await host.stop(false);
      } else if (dependents.has(host)) {
        this.logger.info({ plugin: host.name }, 'a service it uses is reconfigured, removed or added; setting it up again');
        await host.stop(false);
      }
    }
    // What the plugins watch and read decides what the source holds: a plugin that watches Services, or reads an
    // annotation none read before, needs a source that has them (and one that narrowed holds less). The new source starts before the old one stops
    // (the old one serves views meanwhile, as during an API outage), and before the new plugins set up.
    if (!sourceChanged && !sameJSON(sourceInterest(prev), sourceInterest(next))) {
      this.logger.info('what the plugins watch or read changed; restarting discovery');
      const old = this.source;
      await this.startSource(core);
      if (old !== this.source) await old?.stop();
    }
    for (const timer of this.setupRetryTimers.values()) clearTimeout(timer);
    this.setupRetryTimers.clear();
    this.setupFailures.clear();
    const kept = new Map(this.hosts.filter((h) => h.status().phase !== 'stopped').map((h) => [h.name, h]));
    this.hosts = [];
    const fresh: PluginHost[] = [];
    for (const entry of next.plugins) {
      const host = kept.get(entry.name);
      if (host) {
        host.updateReconcileSettings(core.reconcile);
        this.hosts.push(host);
      } else {
        const added = await this.addPlugin(entry, 'reload');
        if (added) fresh.push(added);
      }
    }
    for (const host of fresh) host.start();
    this.metrics.core.configReloadSuccessful.set(refused === undefined ? 1 : 0);
    if (refused === undefined) this.metrics.core.configReloadTimestamp.set(Date.now() / 1000);
    this.notify();
    this.logger.info({ plugins: this.hosts.map((h) => h.name) }, refused === undefined ? 'config applied' : 'config applied in part');
  }

  /** Sets up one plugin and adds it to the host list; returns undefined when it failed and may be skipped. */
  private async addPlugin(entry: PluginEntry, when: 'boot' | 'reload'): Promise<PluginHost | undefined> {
    const host = this.makeHost(entry);
    this.hosts.push(host);
    try {
      await host.setup();
      this.logger.info({ plugin: entry.name }, 'plugin set up');
      return host;
    } catch (err) {
      if (entry.host.onBootFailure === 'abort' && when === 'boot') throw err;
      this.logger.error({ plugin: entry.name, err: describeError(err) }, `plugin failed to set up; ${when === 'boot' ? 'continuing without it (onBootFailure: continue)' : 'the others keep running'}`);
      this.scheduleSetupRetry(entry);
      return undefined;
    }
  }

  /** A plugin whose setup failed is set up again later, with the reconcile backoff. */
  private scheduleSetupRetry(entry: PluginEntry): void {
    const n = (this.setupFailures.get(entry.name) ?? 0) + 1;
    this.setupFailures.set(entry.name, n);
    const { backoffInitial, backoffMax } = this.config.core.reconcile;
    const delay = backoffDelay(n, backoffInitial, backoffMax, this.options.random);
    clearTimeout(this.setupRetryTimers.get(entry.name));
    const timer = setTimeout(() => {
      this.setupRetryTimers.delete(entry.name);
      const run = this.serial.then(() => this.retrySetup(entry));
      this.serial = run.catch(() => undefined);
    }, delay);
    timer.unref();
    this.setupRetryTimers.set(entry.name, timer);
  }

  private async retrySetup(entry: PluginEntry): Promise<void> {
    const index = this.hosts.findIndex((h) => h.entry === entry && h.status().phase === 'failed');
    if (this.stopping || index < 0) return;
    await this.hosts[index]?.stop(false);
    const host = this.makeHost(entry);
    this.hosts[index] = host;
    try {
      await host.setup();
      this.setupFailures.delete(entry.name);
      this.logger.info({ plugin: entry.name }, 'plugin set up after an earlier failure');
      host.start();
    } catch (err) {
      this.logger.error({ plugin: entry.name, err: describeError(err) }, 'plugin setup failed again; retrying later');
      this.scheduleSetupRetry(entry);
    }
  }

  /** A service some plugin provides, for another's `deps`; or why it is not there now. */
  private serviceOf(ref: ServiceRef<unknown>): { readonly value: unknown } | { readonly missing: string } {
    const replaced = this.overrides.get(ref.id);
    if (replaced !== undefined) return { value: replaced.value };
    const provider = this.hosts.find((h) => (h.entry.definition.provides ?? []).some((r) => r.id === ref.id));
    if (provider === undefined) return { missing: 'no enabled plugin provides it' };
    return provider.providedService(ref) ?? { missing: `plugin "${provider.name}" provides it, and is ${provider.status().phase}` };
  }

  /** The plugins that use, directly or through others, a service of one of `hosts` or one of the `added` services. */
  private dependentsOf(hosts: ReadonlySet<PluginHost>, added: readonly string[]): Set<PluginHost> {
    const out = new Set<PluginHost>();
    let grew = true;
    while (grew) {
      grew = false;
      const provided = new Set([...added, ...[...hosts, ...out].flatMap((h) => (h.entry.definition.provides ?? []).map((r) => r.id))]);
      for (const h of this.hosts) {
        if (hosts.has(h) || out.has(h)) continue;
        if (Object.values(h.entry.definition.deps ?? {}).some((d) => provided.has(dependencyOf(d).ref.id))) {
          out.add(h);
          grew = true;
        }
      }
    }
    return out;
  }

  private makeHost(entry: PluginEntry): PluginHost {
    return new PluginHost(entry, {
      root: this.root,
      stateDir: this.config.core.node.stateDir,
      reconcile: this.config.core.reconcile,
      currentView: () => this.view(),
      service: (ref) => this.serviceOf(ref),
      publish: async (patch) => {
        await Promise.resolve();
        this.publisher.publish(entry.name, patch);
      },
      forgetPublished: () => this.publisher.forget(entry.name),
      ...(this.options.random ? { random: this.options.random } : {}),
      ...(this.options.clock ? { clock: this.options.clock } : {}),
      ...(this.overrides.size > 0 ? { overrides: this.overrides } : {}),
      onChange: () => this.notify(),
      kernel: this.kernel,
      ...(this.options.dryRun ? { dryRun: true } : {}),
      ...(this.options.recordPlan ? { recordPlan: this.options.recordPlan } : {}),
    });
  }

  private async startSource(core: CoreConfig): Promise<void> {
    const factory = this.options.nodeSourceFactory ?? defaultNodeSourceFactory;
    const source = factory(core, resolveNodeName(core, this.options.env ?? process.env), this.logger, this.metrics);
    const { watches, reads } = sourceInterest(this.config);
    this.pendingSource = source;
    await source.start(new Set(watches), (view) => {
      // A source being replaced (see doApply) says nothing once its successor has taken over.
      if (source !== this.source && source !== this.pendingSource) return;
      this.metrics.core.discoveryNodes.set(view.nodes.length);
      const vetted = this.claims.view(view, this.rules);
      for (const host of this.hosts) host.clusterChanged(vetted);
      this.notify();
    }, reads);
    this.source = source;
    this.pendingSource = undefined;
    this.metrics.core.discoveryNodes.set(source.current().nodes.length);
    const vetted = this.view();
    provide(this.root, agentServices.nodeSource, source);
    for (const host of this.hosts) host.clusterChanged(vetted);
  }

  private async listen(listen: string | null): Promise<void> {
    if (listen === null) {
      await this.http.close();
      return;
    }
    const parsed = parseListen(listen) as { host: string; port: number };
    try {
      await this.http.listen(parsed.host, parsed.port);
    } catch (err) {
      throw new WeftError('WEFT_CONFIG_INVALID', `http.listen ${listen}: cannot listen: ${describeError(err)}`, { cause: err });
    }
  }

  /** Counts a refusal; says so in the log at most once a minute, with how many since the last line. */
  private httpRefused(reason: HttpRefusal): void {
    this.metrics.core.httpRefused.inc({ reason });
    const r = this.refusals;
    r.counts[reason] = (r.counts[reason] ?? 0) + 1;
    const now = performance.now();
    if (now - r.loggedAt < 60_000) return;
    this.logger.warn({ refused: r.counts, limits: this.config.core.http.limits }, 'HTTP limits hit: requests or connections turned away (weft_http_refused_total)');
    r.counts = {};
    r.loggedAt = now;
  }

  private async listenSocket(path: string | null): Promise<void> {
    try {
      await this.http.listenSocket(path);
    } catch (err) {
      throw new WeftError('WEFT_CONFIG_INVALID', `http.socket ${String(path)}: cannot listen: ${describeError(err)}`, { cause: err });
    }
  }

  /** The latest cluster view, as plugins see it: every node's claims checked (discovery/claims.ts). */
  view(): ClusterView {
    if (!this.source) throw new Error('discovery has not started');
    return this.claims.view(this.source.current(), this.rules);
  }

  /** Asks for a reconcile of one plugin (merged with its other pending triggers); throws when no such plugin runs. */
  trigger(plugin: string, reason: string): void {
    const host = this.hosts.find((h) => h.name === plugin);
    if (!host) throw new WeftError('WEFT_PLUGIN_UNKNOWN', `no plugin "${plugin}" in this agent; running: ${this.hosts.map((h) => h.name).join(', ') || 'none'}`);
    host.trigger(reason);
  }

  /** Status of every plugin, in setup order (the config's, with the providers of services before their users). */
  pluginStatus(): PluginStatus[] {
    return this.hosts.map((h) => h.status());
  }

  /**
   * Ready when discovery has synced and every plugin that is set up has reconciled successfully once since its
   * (re)setup. A plugin that failed its setup under `onBootFailure: continue` is reported but does not block.
   */
  readiness(): Readiness {
    const checks: Record<string, { ok: boolean; detail?: string }> = {};
    const synced = this.source?.synced() ?? false;
    const health = this.source?.health?.();
    // Cut off from the API after the first view, the agent keeps serving the last one: ready, and saying so.
    checks.discovery = !synced
      ? { ok: false, detail: 'discovery has not synced' }
      : health && !health.connected
        ? { ok: true, detail: `disconnected${health.since !== undefined ? ` since ${new Date(health.since).toISOString()}` : ''}, serving the last view (${plural(this.source?.current().nodes.length ?? 0, 'node')})` }
        : { ok: true };
    for (const s of this.pluginStatus()) {
      if (s.phase === 'failed') checks[`plugin:${s.name}`] = { ok: true, detail: `setup failed, running without it: ${s.lastError ?? ''}` };
      else if (s.phase !== 'running') checks[`plugin:${s.name}`] = { ok: false, detail: s.phase };
      else if (!s.reconciled) checks[`plugin:${s.name}`] = { ok: false, detail: s.lastError ? `not reconciled yet: ${s.lastError}` : 'not reconciled yet' };
      else checks[`plugin:${s.name}`] = { ok: true };
    }
    const ready = this.started && !this.stopping && Object.values(checks).every((c) => c.ok);
    return { ready, checks };
  }

  /** Calls `listener` whenever plugin status or the view changes; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch {
        // A listener's bug is not the agent's.
      }
    }
  }

  /**
   * Stops plugins in reverse config order, then discovery and the HTTP server. The data plane stays as it is
   * (so a rolling update does not cut traffic) unless `cleanup` is set. Idempotent.
   */
  stop(options: { cleanup?: boolean } = {}): Promise<void> {
    this.stopAsked.interrupt();
    this.stopping ??= (async () => {
      for (const timer of this.setupRetryTimers.values()) clearTimeout(timer);
      try {
        await this.serial;
        for (const host of [...this.hosts].reverse()) await host.stop(options.cleanup ?? false, this.options.stopTimeoutMs);
        // What the plugins published last gets written before discovery stops (bounded: the API may be down).
        await this.publisher.flushed(2_000);
        this.publisher.stop();
        await this.source?.stop();
        await this.pendingSource?.stop();
        await this.http.close();
        await this.http.closeSocket();
        if (this.options.kernel === undefined) this.kernel.close?.();
        this.logger.info('weft stopped');
      } finally {
        this.markStopped();
      }
    })();
    return this.stopping;
  }
}

/** What {@link Agent.start} rejects with when stop() was called before the start finished. */
export class StartInterrupted extends Error {
  constructor() {
    super('stopped during start-up');
    this.name = 'StartInterrupted';
  }
}

function interruption(): { promise: Promise<never>; interrupt(): void } {
  let interrupt = (): void => undefined;
  const promise = new Promise<never>((_resolve, reject) => {
    interrupt = () => reject(new StartInterrupted());
  });
  promise.catch(() => undefined); // nobody may be racing it
  return { promise, interrupt };
}

function httpLimits(core: CoreConfig): HttpLimits {
  const l = core.http.limits;
  return { connections: l.connections, perClient: l.requestsPerSecond, burst: l.burst, total: l.totalRequestsPerSecond };
}

function plural(n: number, word: string): string {
  return `${String(n)} ${word}${n === 1 ? '' : 's'}`;
}

/** How long the process has run, in whole milliseconds: what the start cost, in the start's log lines. */
function uptimeMs(): number {
  return Math.round(process.uptime() * 1000);
}

/** What discovery must hold for a config's plugins: the collections they watch, and the part of a node they read. */
function sourceInterest(config: WeftConfig): { watches: Watchable[]; reads: NodeReads } {
  const watches = [...new Set(config.plugins.flatMap((p) => p.definition.watches))].sort();
  return { watches, reads: unionReads(config.plugins.map((p) => pluginReads(p.definition, p.config))) };
}
