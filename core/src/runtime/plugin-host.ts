import type { ClusterView } from '../api/cluster.js';
import { describeError, WeftError } from '../api/errors.js';
import { type PluginInstance, type PluginServices, type PluginStatusReport, pluginReads } from '../api/plugin.js';
import { type Clock, coreServices, dependencyOf, isCoreService, type PublishService, type ServiceOverride, type ServiceRef } from '../api/services.js';
import type { PluginEntry } from '../config/load.js';
import type { ReconcileSettings } from '../config/schema.js';
import { type CompiledReads, compileReads, viewChangedFor } from '../discovery/reads.js';
import type { Logger } from '../observe/logger.js';
import type { MetricsHub } from '../observe/metrics.js';
import type { HttpServer } from '../observe/http.js';
import { systemClock } from '../reconcile/clock.js';
import { type LoopSettings, ReconcileLoop, type RunReport } from '../reconcile/loop.js';
import { agentServices } from './agent-services.js';
import { type DependencyContainer, provide, resolveRef } from './container.js';
import type { KernelBackend } from '../kernel/driver.js';
import { applyDesired } from '../kernel/driver.js';
import type { Change, KernelOwner } from '../kernel/model.js';
import { createKernelService } from './kernel-service.js';
import { dryRunState, pluginState } from './state.js';

/** Where a plugin is in its life. */
export type PluginPhase = 'starting' | 'running' | 'failed' | 'stopped';

/** What the agent tells a plugin host about the world. */
export interface PluginHostContext {
  readonly root: DependencyContainer;
  readonly stateDir: string;
  readonly reconcile: ReconcileSettings;
  readonly currentView: () => ClusterView;
  /** A service another plugin provides (for `deps`), or why there is none now. */
  readonly service?: (ref: ServiceRef<unknown>) => { readonly value: unknown } | { readonly missing: string };
  readonly publish: PublishService;
  /** Removes every annotation this plugin published (when it is switched off). */
  readonly forgetPublished?: () => void;
  readonly random?: () => number;
  /** The clock of the plugin's reconcile loop and its `clock` service (default the system's). */
  readonly clock?: Clock;
  /** Services that replace the core's (a test's `mockService`), by ref id. */
  readonly overrides?: ReadonlyMap<string, ServiceOverride>;
  /** Called whenever phase, readiness or health change. */
  readonly onChange?: () => void;
  /** The kernel of the agent's namespace. */
  readonly kernel: KernelBackend;
  /** `weft plan`: the kernel only records, publish and state writes go nowhere. */
  readonly dryRun?: boolean;
  /** Under `weft plan`, receives each plugin's planned changes. */
  readonly recordPlan?: (plugin: string, changes: readonly Change[]) => void;
}

/** A plugin's status, for `/readyz`, `weft lab status` and tests. */
export interface PluginStatus {
  readonly name: string;
  readonly phase: PluginPhase;
  /** A successful reconcile happened since the last setup. */
  readonly reconciled: boolean;
  readonly runs: number;
  readonly lastResult?: RunReport['result'];
  readonly lastError?: string;
  readonly stuck: boolean;
}

/** Merges the core reconcile settings with a plugin's overrides. */
export function loopSettings(core: ReconcileSettings, overrides: Partial<LoopSettings> | undefined): LoopSettings {
  const pick = <K extends keyof LoopSettings>(k: K): number => overrides?.[k] ?? core[k];
  return {
    debounce: pick('debounce'),
    resync: pick('resync'),
    timeout: pick('timeout'),
    backoffInitial: pick('backoffInitial'),
    backoffMax: pick('backoffMax'),
  };
}

/**
 * Runs one plugin: its child container and services, setup with a timeout, its reconcile loop, and stop. Nothing a
 * plugin does (throw, hang, reject) escapes this class.
 */
export class PluginHost {
  readonly name: string;
  private phase: PluginPhase = 'starting';
  private instance: PluginInstance | undefined;
  /** Ends a setup in progress (set while one runs). */
  private cancelSetup: (() => void) | undefined;
  private container: DependencyContainer | undefined;
  private readonly lifetime = new AbortController();
  private readonly loop: ReconcileLoop;
  private readonly log: Logger;
  private readonly hub: MetricsHub;
  private readonly http: ReturnType<HttpServer['forPlugin']>;
  private runs = 0;
  private reconciled = false;
  private stuck = false;
  private lastReport: RunReport | undefined;
  /** The services this plugin's setup provided, by ref id (see {@link providedService}). */
  private readonly provided = new Map<string, unknown>();
  /** The last terminal failure logged at error level (the same again is logged at debug). */
  private terminalLogged: string | undefined;
  private setupError: string | undefined;
  private stopping: Promise<void> | undefined;

  /** What this plugin owns in the kernel, when it declares anything. */
  readonly owner: KernelOwner | undefined;
  /** The part of each node the plugin reads. */
  private readonly reads: CompiledReads;
  /** The view of the plugin's last run, or of the last cluster change that will run it. */
  private seenView: ClusterView | undefined;

  constructor(
    readonly entry: PluginEntry,
    private readonly ctx: PluginHostContext,
  ) {
    this.name = entry.name;
    this.owner = entry.definition.kernel ? { name: entry.name, ...entry.definition.kernel } : undefined;
    this.reads = compileReads(pluginReads(entry.definition, entry.config));
    const root = ctx.root;
    this.log = resolveRef(root, agentServices.rootLogger, this.name).child({ plugin: this.name });
    this.hub = resolveRef(root, agentServices.metricsHub, this.name);
    this.http = resolveRef(root, agentServices.httpServer, this.name).forPlugin(this.name);
    this.loop = new ReconcileLoop({
      settings: loopSettings(ctx.reconcile, entry.host.reconcile),
      ...(ctx.random ? { random: ctx.random } : {}),
      ...(ctx.clock ? { clock: ctx.clock } : {}),
      reconcile: async ({ signal, reasons, attempt }) => {
        const instance = this.instance as PluginInstance;
        const view = ctx.currentView();
        // What the plugin has seen: later changes are compared with this view.
        this.seenView = view;
        return instance.reconcile({ view, signal, reasons, attempt });
      },
      onRun: (report) => this.recordRun(report),
      onStuck: (stuck) => {
        this.stuck = stuck;
        if (stuck) this.log.error('reconcile ignored its abort signal and is still running; no new run starts until it ends');
        this.updateUp();
      },
    });
  }

  /** Creates the plugin's container and services and runs its setup, within `setupTimeout`. Throws WeftError. */
  async setup(): Promise<void> {
    const { entry, ctx } = this;
    const child = ctx.root.createChildContainer();
    this.container = child;
    provide(child, coreServices.pluginName, this.name);
    provide(child, coreServices.config, entry.config);
    provide(child, coreServices.logger, this.log);
    provide(child, coreServices.metrics, this.hub.forPlugin(this.name));
    provide(child, coreServices.cluster, { current: ctx.currentView });
    const dryRun = ctx.dryRun === true;
    provide(child, coreServices.dryRun, dryRun);
    provide(child, coreServices.publish, dryRun ? async () => undefined : ctx.publish);
    provide(child, coreServices.state, dryRun ? dryRunState(pluginState(ctx.stateDir, this.name)) : pluginState(ctx.stateDir, this.name, this.log));
    provide(
      child,
      coreServices.kernel,
      createKernelService({
        backend: ctx.kernel,
        plugin: this.name,
        owner: this.owner,
        logger: this.log,
        metrics: this.hub,
        dryRun,
        record: (changes) => ctx.recordPlan?.(this.name, changes),
      }),
    );
    provide(child, coreServices.http, { basePath: this.http.basePath, route: this.http.route });
    provide(child, coreServices.trigger, (reason: string) => this.loop.trigger(reason));
    provide(child, coreServices.lifetime, this.lifetime.signal);
    provide(child, coreServices.clock, ctx.clock ?? systemClock);
    // A test's replacements of core services win over what the host made.
    for (const o of ctx.overrides?.values() ?? []) if (isCoreService(o.ref)) provide(child, o.ref, o.value);

    // What the plugin offers others: only the refs it declared, each once, during its setup.
    const declared = new Set((entry.definition.provides ?? []).map((r) => r.id));
    this.provided.clear();
    let settingUp = true;
    const offer = <T>(ref: ServiceRef<T>, value: T): void => {
      if (!settingUp) throw new WeftError('WEFT_REGISTRATION_CONFLICT', `plugin "${this.name}": ${ref.id} provided after setup; provide services during setup`);
      if (!declared.has(ref.id)) throw new WeftError('WEFT_REGISTRATION_CONFLICT', `plugin "${this.name}": provides ${ref.id}, which its definition does not list in provides`);
      if (this.provided.has(ref.id)) throw new WeftError('WEFT_REGISTRATION_CONFLICT', `plugin "${this.name}": ${ref.id} provided twice`);
      this.provided.set(ref.id, value);
    };
    // What it uses of others: resolved now (its providers were set up before it), inside the setup's error handling.
    const resolveDeps = (): Record<string, unknown> => {
      const deps: Record<string, unknown> = {};
      for (const [key, declaredDep] of Object.entries(entry.definition.deps ?? {})) {
        const { ref, optional } = dependencyOf(declaredDep);
        // A core service (`coreServices.kernel`) comes from the plugin's own container, a test's replacement included.
        if (isCoreService(ref)) {
          deps[key] = resolveRef(child, ref, this.name);
          continue;
        }
        const found = ctx.service?.(ref) ?? { missing: 'this agent offers no plugin services' };
        if ('value' in found) deps[key] = found.value;
        else if (optional) deps[key] = undefined;
        else throw new WeftError('WEFT_SERVICE_UNAVAILABLE', `plugin "${this.name}": deps.${key} (${ref.id}) is not available: ${found.missing}`);
      }
      return deps;
    };

    // Who it is and its config; every service comes through `deps`, only those it declared.
    const base = {
      name: this.name,
      config: resolveRef(child, coreServices.config, this.name),
      lifetime: resolveRef(child, coreServices.lifetime, this.name),
      dryRun: resolveRef(child, coreServices.dryRun, this.name),
    };

    const timeoutMs = entry.host.setupTimeout;
    let timer: NodeJS.Timeout | undefined;
    const setup = Promise.resolve().then(() => {
      const services: PluginServices<unknown> = { ...base, deps: resolveDeps() as PluginServices<unknown>['deps'], provide: offer };
      return entry.definition.setup(services);
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WeftError('WEFT_PLUGIN_SETUP_TIMEOUT', `plugin "${this.name}": setup did not finish within ${timeoutMs} ms`)), timeoutMs);
      // stop() during the setup ends the wait at once (and with it the timer that would keep the process alive).
      this.cancelSetup = () => reject(new WeftError('WEFT_PLUGIN_SETUP_FAILED', `plugin "${this.name}": stopped during its setup`));
    });
    try {
      const instance = await Promise.race([setup, timeout]);
      if (typeof instance?.reconcile !== 'function') {
        throw new WeftError('WEFT_PLUGIN_SETUP_FAILED', `plugin "${this.name}": setup must return { reconcile, stop? }`);
      }
      if (typeof instance.status === 'function') {
        const report = instance.status.bind(instance);
        // A plugin that reports a status registered no /status of its own: a second one is a conflict, said here.
        this.http.route('GET', '/status', () => ({ json: checkedReport(this.name, report()) }));
      }
      const unprovided = [...declared].filter((id) => !this.provided.has(id));
      if (unprovided.length > 0) throw new WeftError('WEFT_PLUGIN_SETUP_FAILED', `plugin "${this.name}": setup did not provide ${unprovided.join(', ')} (declared in provides)`);
      settingUp = false;
      this.instance = instance;
      this.phase = 'running';
      this.setupError = undefined;
      this.ctx.onChange?.();
    } catch (err) {
      settingUp = false;
      this.provided.clear();
      this.lifetime.abort(err);
      // A setup that finishes after its timeout still gets its resources released.
      setup.then((late) => late?.stop?.({ cleanup: false }), () => undefined).catch(() => undefined);
      this.phase = 'failed';
      const error =
        err instanceof WeftError ? err : new WeftError('WEFT_PLUGIN_SETUP_FAILED', `plugin "${this.name}": setup failed: ${describeError(err)}`, { cause: err });
      this.setupError = error.message;
      this.http.clear();
      this.hub.core.pluginUp.set({ plugin: this.name }, 0);
      this.ctx.onChange?.();
      throw error;
    } finally {
      clearTimeout(timer);
      this.cancelSetup = undefined;
    }
  }

  /** The value this plugin provides for `ref`, while it runs (after a successful setup, until it stops). */
  providedService(ref: ServiceRef<unknown>): { readonly value: unknown } | undefined {
    return this.phase === 'running' && this.provided.has(ref.id) ? { value: this.provided.get(ref.id) } : undefined;
  }

  /** Starts reconciling (a first run at once, then on triggers, retries and resyncs). */
  start(): void {
    if (this.phase === 'running') this.loop.start();
  }

  /** Asks for a reconcile. */
  trigger(reason: string): void {
    this.loop.trigger(reason);
  }

  /**
   * A new cluster view: runs the plugin when something it reads (its `reads`) changed since the view it last ran
   * with (or that a pending run was asked for); otherwise only counts the skip. Returns whether it will run; a
   * stopped plugin never does.
   */
  clusterChanged(view: ClusterView): boolean {
    if (this.phase === 'stopped') return false;
    if (this.seenView !== undefined && !viewChangedFor(this.reads, this.seenView, view)) {
      this.hub.core.clusterChangesSkipped.inc({ plugin: this.name });
      return false;
    }
    this.seenView = view;
    this.loop.trigger('cluster');
    return true;
  }

  /** Applies new core reconcile settings (the plugin's own overrides still win). */
  updateReconcileSettings(core: ReconcileSettings): void {
    this.loop.updateSettings(loopSettings(core, this.entry.host.reconcile));
  }

  /** The plugin's status. */
  status(): PluginStatus {
    const last = this.lastReport;
    const lastError = this.setupError ?? (last?.error !== undefined ? describeError(last.error) : undefined);
    return {
      name: this.name,
      phase: this.phase,
      reconciled: this.reconciled,
      runs: this.runs,
      stuck: this.stuck,
      ...(last ? { lastResult: last.result } : {}),
      ...(lastError !== undefined ? { lastError } : {}),
    };
  }

  /**
   * Stops the loop (aborting a run in progress), then the instance. `cleanup` asks the plugin to remove what it
   * put in the data plane. Idempotent; bounded by `waitMs` per step.
   */
  stop(cleanup: boolean, waitMs = 10_000): Promise<void> {
    this.stopping ??= this.doStop(cleanup, waitMs);
    return this.stopping;
  }

  private async doStop(cleanup: boolean, waitMs: number): Promise<void> {
    this.cancelSetup?.();
    const settled = await this.loop.stop(waitMs);
    if (!settled) this.log.warn({ waitMs }, 'reconcile still running at stop; stopping the plugin anyway');
    this.lifetime.abort(new Error('plugin stopping'));
    const instance = this.instance;
    this.instance = undefined;
    if (instance?.stop) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(() => instance.stop?.({ cleanup })),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`stop did not finish within ${waitMs} ms`)), waitMs);
          }),
        ]);
      } catch (err) {
        this.log.error({ err: describeError(err) }, 'plugin stop failed');
      } finally {
        clearTimeout(timer);
      }
    }
    if (cleanup && !this.ctx.dryRun) this.ctx.forgetPublished?.();
    if (cleanup && this.owner && !this.ctx.dryRun) {
      // Switched off: whatever the plugin did, nothing it owns stays in the kernel.
      try {
        const { changes } = await applyDesired(this.ctx.kernel, this.owner, {});
        if (changes.length > 0) this.log.info({ changes: changes.map((c) => `${c.op} ${c.id}`) }, 'removed what the plugin owned in the kernel');
      } catch (err) {
        this.log.error({ err: describeError(err) }, 'removing what the plugin owned in the kernel failed');
      }
    }
    this.http.clear();
    this.hub.dropPlugin(this.name);
    try {
      await this.container?.dispose();
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'disposing the plugin container failed');
    }
    this.phase = 'stopped';
    this.provided.clear();
    this.ctx.onChange?.();
  }

  private recordRun(report: RunReport): void {
    this.runs += 1;
    this.lastReport = report;
    const { reconcileDuration, reconcileTotal } = this.hub.core;
    reconcileDuration.observe({ plugin: this.name }, report.seconds);
    reconcileTotal.inc({ plugin: this.name, result: report.result });
    const fields = { reasons: [...report.reasons], attempt: report.attempt, ms: Math.round(report.seconds * 1000) };
    switch (report.result) {
      case 'success':
        this.reconciled = true;
        this.terminalLogged = undefined;
        this.log.debug(fields, 'reconciled');
        break;
      case 'terminal': {
        // One line per distinct failure: the same refusal on every resync says nothing new (the metric counts them).
        const err = describeError(report.error);
        if (err !== this.terminalLogged) this.log.error({ ...fields, err }, 'reconcile failed terminally; waiting for the next change');
        else this.log.debug({ ...fields, err }, 'reconcile failed terminally again');
        this.terminalLogged = err;
        break;
      }
      default:
        this.log.warn({ ...fields, err: describeError(report.error), retryInMs: report.nextInMs }, `reconcile ${report.result === 'timeout' ? 'timed out' : 'failed'}; retrying`);
    }
    this.updateUp();
  }

  private updateUp(): void {
    const up = this.phase === 'running' && !this.stuck && this.lastReport?.result === 'success';
    this.hub.core.pluginUp.set({ plugin: this.name }, up ? 1 : 0);
    this.ctx.onChange?.();
  }
}

/** A plugin's status report, checked: a plugin that breaks the contract gets an error naming it, not a bad answer. */
function checkedReport(plugin: string, report: PluginStatusReport): PluginStatusReport {
  if (report === null || typeof report !== 'object' || typeof report.converged !== 'boolean' || typeof report.summary !== 'string') {
    throw new WeftError('WEFT_PLUGIN_INVALID', `plugin "${plugin}": status() must return { converged: boolean, summary: string, row? }`);
  }
  return report;
}
