import {
  collectDefaultMetrics,
  Counter,
  type CounterConfiguration,
  Gauge,
  type GaugeConfiguration,
  Histogram,
  type HistogramConfiguration,
  type Metric,
  Registry,
} from 'prom-client';
import { WeftError } from '../api/errors.js';
import type { PluginMetrics } from '../api/services.js';

/** The metrics every agent exports, whatever plugins run. */
export interface CoreMetrics {
  readonly reconcileDuration: Histogram<'plugin'>;
  readonly reconcileTotal: Counter<'plugin' | 'result'>;
  readonly pluginUp: Gauge<'plugin'>;
  readonly configReloadSuccessful: Gauge;
  readonly configReloadTimestamp: Gauge;
  readonly buildInfo: Gauge<'version' | 'node'>;
  readonly kernelChanges: Counter<'owner' | 'kind' | 'op'>;
  readonly kernelApplyFailures: Counter<'owner' | 'kind'>;
  readonly discoveryConnected: Gauge;
  readonly discoveryEvents: Counter<'resource' | 'type'>;
  readonly discoveryNodes: Gauge;
  readonly claimsRefused: Gauge<'node' | 'field'>;
  readonly httpRefused: Counter<'reason'>;
  readonly clusterChangesSkipped: Counter<'plugin'>;
}

type AnyConfig = { name: string; help: string; labelNames?: readonly string[] };

/** How often the event loop's delay is sampled for `nodejs_eventloop_lag_*` (ms). */
const EVENT_LOOP_SAMPLE_MS = 1000;

/**
 * One prom-client registry for the core and one per plugin (its series labelled `plugin`). Names are unique
 * across all of them: a plugin cannot shadow a core metric or another plugin's.
 */
export class MetricsHub {
  readonly registry = new Registry();
  readonly core: CoreMetrics;
  private readonly plugins = new Map<string, Registry>();

  constructor(version: string, options: { defaultMetrics?: boolean } = {}) {
    // prom-client samples the event loop's delay with a timer every `eventLoopMonitoringPrecision` ms: at its default
    // (10 ms) that timer woke an idle agent 100 times a second, ~0.5 s of CPU per minute on every node. Once a second
    // still catches a blocked loop (the timer fires late by as much), for nearly nothing.
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    const registers = [this.registry];
    this.core = {
      reconcileDuration: new Histogram({
        name: 'weft_reconcile_duration_seconds',
        help: 'Time a reconcile took, by plugin',
        labelNames: ['plugin'],
        buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers,
      }),
      reconcileTotal: new Counter({
        name: 'weft_reconcile_total',
        help: 'Reconciles by plugin and result (success, error, terminal, timeout)',
        labelNames: ['plugin', 'result'],
        registers,
      }),
      pluginUp: new Gauge({
        name: 'weft_plugin_up',
        help: '1 when the plugin is set up and its last reconcile succeeded, else 0',
        labelNames: ['plugin'],
        registers,
      }),
      configReloadSuccessful: new Gauge({
        name: 'weft_config_last_reload_successful',
        help: '1 when the last config load (at start or on change) was applied, 0 when it was refused',
        registers,
      }),
      configReloadTimestamp: new Gauge({
        name: 'weft_config_last_reload_success_timestamp_seconds',
        help: 'When the config was last applied, in seconds since the epoch',
        registers,
      }),
      kernelChanges: new Counter({
        name: 'weft_kernel_changes_total',
        help: 'Kernel objects changed, by owning plugin, object kind and operation (add, replace, set, delete)',
        labelNames: ['owner', 'kind', 'op'],
        registers,
      }),
      kernelApplyFailures: new Counter({
        name: 'weft_kernel_apply_failures_total',
        help: 'Kernel applies that failed (the kernel refused a change), by owning plugin and the kind of the refused object',
        labelNames: ['owner', 'kind'],
        registers,
      }),
      discoveryConnected: new Gauge({ name: 'weft_discovery_connected', help: '1 while every list and watch of the Kubernetes API is up, else 0', registers }),
      discoveryEvents: new Counter({
        name: 'weft_discovery_events_total',
        help: 'Watch events from the Kubernetes API, by resource and type (add, update, delete)',
        labelNames: ['resource', 'type'],
        registers,
      }),
      discoveryNodes: new Gauge({ name: 'weft_discovery_nodes', help: 'Nodes in the cluster view', registers }),
      claimsRefused: new Gauge({
        name: 'weft_claims_refused',
        help: "Claims of a node the core refused (pod CIDRs, addresses, its place in the view), by node and field",
        labelNames: ['node', 'field'],
        registers,
      }),
      clusterChangesSkipped: new Counter({
        name: 'weft_cluster_changes_skipped_total',
        help: 'Cluster changes that did not run a plugin: nothing it reads (its declared reads) changed',
        labelNames: ['plugin'],
        registers,
      }),
      httpRefused: new Counter({
        name: 'weft_http_refused_total',
        help: "Connections and requests the agent's HTTP limits turned away, by reason (connections, client-rate, total-rate)",
        labelNames: ['reason'],
        registers,
      }),
      buildInfo: new Gauge({ name: 'weft_build_info', help: 'Always 1; labels say the weft and Node versions', labelNames: ['version', 'node'], registers }),
    };
    this.core.buildInfo.set({ version, node: process.version }, 1);
  }

  /** A fresh registry for a plugin (an earlier one of the same plugin is dropped: its series go with it). */
  forPlugin(plugin: string): PluginMetrics {
    const registry = new Registry();
    registry.setDefaultLabels({ plugin });
    this.plugins.set(plugin, registry);
    const getOrCreate = <M extends Metric>(config: AnyConfig, kind: string, make: () => M): M => {
      const existing = registry.getSingleMetric(config.name);
      if (existing) {
        const same = existing.constructor.name === kind && sameLabels((existing as unknown as { labelNames: string[] }).labelNames, config.labelNames);
        if (!same) throw new WeftError('WEFT_REGISTRATION_CONFLICT', `plugin "${plugin}": metric ${config.name} already exists with another type or labels`);
        return existing as M;
      }
      const owner = this.ownerOf(config.name);
      if (owner !== undefined) {
        throw new WeftError('WEFT_REGISTRATION_CONFLICT', `plugin "${plugin}": metric ${config.name} is already registered by ${owner}`);
      }
      return make();
    };
    const registers = [registry];
    return {
      counter: <L extends string>(c: Omit<CounterConfiguration<L>, 'registers'>) =>
        getOrCreate(c, 'Counter', () => new Counter<L>({ ...c, registers })),
      gauge: <L extends string>(c: Omit<GaugeConfiguration<L>, 'registers'>) => getOrCreate(c, 'Gauge', () => new Gauge<L>({ ...c, registers })),
      histogram: <L extends string>(c: Omit<HistogramConfiguration<L>, 'registers'>) =>
        getOrCreate(c, 'Histogram', () => new Histogram<L>({ ...c, registers })),
    };
  }

  /** Forgets a plugin's registry: its series disappear from `/metrics`. */
  dropPlugin(plugin: string): void {
    this.plugins.delete(plugin);
    this.core.pluginUp.remove({ plugin });
    this.core.reconcileDuration.remove({ plugin });
    for (const result of ['success', 'error', 'terminal', 'timeout']) this.core.reconcileTotal.remove({ plugin, result });
    this.core.clusterChangesSkipped.remove({ plugin });
  }

  /** The Prometheus text exposition of every registry. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    const parts = await Promise.all([this.registry, ...this.plugins.values()].map((r) => r.metrics()));
    return { contentType: this.registry.contentType, body: parts.filter((p) => p.trim() !== '').join('\n') };
  }

  private ownerOf(name: string): string | undefined {
    if (this.registry.getSingleMetric(name)) return 'the core';
    for (const [plugin, registry] of this.plugins) if (registry.getSingleMetric(name)) return `plugin "${plugin}"`;
    return undefined;
  }
}

function sameLabels(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = [...(a ?? [])].sort().join(',');
  const y = [...(b ?? [])].sort().join(',');
  return x === y;
}
