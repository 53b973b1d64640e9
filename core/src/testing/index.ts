/**
 * `@weft/core/testing`: run a real agent in-process with chosen plugins, a fake cluster and the in-memory kernel,
 * without root.
 *
 * @example
 * const t = await startTestAgent({ plugins: [myPlugin], nodes: [{ name: 'a' }, { name: 'b' }] });
 * await t.waitForReconcile('my-plugin');
 * t.cluster.setNode({ name: 'c' });
 * await t.waitForReconcile('my-plugin');
 * await t.stop();
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { WeftError } from '../api/errors.js';
import { parseDuration } from '../api/schema.js';
import type { PluginDefinition } from '../api/plugin.js';
import type { Clock, ServiceOverride, ServiceRef } from '../api/services.js';
import { loadConfigText, type WeftConfig } from '../config/load.js';
import { createLogger } from '../observe/logger.js';
import { MemoryKernel } from '../kernel/memory.js';
import { Agent } from '../runtime/agent.js';
import type { PluginStatus } from '../runtime/plugin-host.js';
import { FakeCluster, type NodeInit } from './fake-cluster.js';

export { FakeCluster, makeNode, type NodeInit } from './fake-cluster.js';
export { FakeClock } from './fake-clock.js';
export { vettedView } from './vetted-view.js';
export { Agent } from '../runtime/agent.js';
export { MemoryKernel, type MemoryKernelState, type MemoryRoute } from '../kernel/memory.js';
export type { PluginStatus } from '../runtime/plugin-host.js';

/**
 * Replaces one service for a test agent: a core service (`coreServices.publish`, `coreServices.state`, …) in every
 * plugin's setup, or a service a plugin would provide (`overlayServiceRef`), which then no enabled plugin need provide.
 *
 * @example
 * const published: Record<string, string | null>[] = [];
 * await startTestAgent({ plugins: [mine], services: [mockService(coreServices.publish, async (p) => void published.push(p))] });
 */
export function mockService<T>(ref: ServiceRef<T>, value: T): ServiceOverride<T> {
  return { ref, value };
}

/** A plugin with its config section (as it would be written in weft.yaml, host keys included). */
export interface TestPlugin {
  readonly plugin: PluginDefinition;
  readonly config?: Record<string, unknown>;
}

export interface StartTestAgentOptions {
  readonly plugins: readonly (PluginDefinition | TestPlugin)[];
  /** The cluster's nodes; default one node named after `self`. */
  readonly nodes?: readonly NodeInit[];
  /** This agent's node name; default the first node's, else `node-a`. */
  readonly self?: string;
  /** Serve HTTP on 127.0.0.1 at a free port (default true). */
  readonly http?: boolean;
  /**
   * Core reconcile settings as in weft.yaml (`{ debounce: '10ms' }`); default short ones for tests. Unlike weft.yaml,
   * `resync` may be under a second (`'200ms'`): any positive period the scheduler runs.
   */
  readonly reconcile?: Readonly<Record<string, string>>;
  /** State directory; default a fresh temporary one, removed by `stop()`. */
  readonly stateDir?: string;
  /** Log level of the captured logs (default `debug`). */
  readonly logLevel?: string;
  /** The kernel plugins apply to; default a fresh in-memory kernel. */
  readonly kernel?: MemoryKernel;
  /** The `cluster` section as in weft.yaml (the address plan and limits every node's claims are checked against). */
  readonly cluster?: Readonly<Record<string, unknown>>;
  /** The clock of the reconcile loops and the plugins' `clock` service; a {@link FakeClock} to move time by hand. */
  readonly clock?: Clock;
  /** Services that replace the core's or a plugin's ({@link mockService}). */
  readonly services?: readonly ServiceOverride[];
}

/** One captured log line. */
export type LogRecord = Record<string, unknown> & { level: number; msg?: string };

export interface TestAgent {
  readonly agent: Agent;
  readonly cluster: FakeCluster;
  /** The in-memory kernel the plugins apply to: read it with `snapshot()`, make drift with `drift()`. */
  readonly kernel: MemoryKernel;
  readonly config: WeftConfig;
  /** `http://127.0.0.1:<port>` when HTTP is on. */
  readonly url: string | undefined;
  readonly stateDir: string;
  /** Every log line, parsed. */
  readonly logs: LogRecord[];
  /** Asks for a reconcile of `plugin` (reason `test`) and resolves with its status once that run has completed. */
  trigger(plugin: string, options?: { timeoutMs?: number }): Promise<PluginStatus>;
  /** Resolves once `plugin` has completed `runs` more reconciles (default 1) than when called. */
  waitForReconcile(plugin: string, options?: { runs?: number; timeoutMs?: number }): Promise<PluginStatus>;
  /** Resolves once `predicate` holds (checked after every status or view change, and every 25 ms). */
  waitFor(predicate: () => boolean | Promise<boolean>, options?: { timeoutMs?: number; what?: string }): Promise<void>;
  /** A plugin's status. */
  status(plugin: string): PluginStatus;
  /** `fetch` against the agent's HTTP server. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Stops the agent (data plane left, as on shutdown) and removes a temporary state directory. */
  stop(options?: { cleanup?: boolean }): Promise<void>;
}

/**
 * Builds the config a test agent runs with (or one to hand to `agent.applyConfig` as a reload); plugin sections
 * pass through the plugins' own schemas, so a bad section fails here as it would in weft.yaml.
 */
export async function buildTestConfig(options: StartTestAgentOptions): Promise<WeftConfig> {
  const self = options.self ?? options.nodes?.[0]?.name ?? 'node-a';
  const stateDir = options.stateDir ?? join(tmpdir(), 'weft-test-unused');
  const specs = options.plugins.map((p) => ('plugin' in p ? p : { plugin: p }));
  const data = {
    node: { name: self, stateDir },
    ...(options.cluster ? { cluster: options.cluster } : {}),
    reconcile: { debounce: '10ms', resync: '1h', timeout: '10s', backoffInitial: '50ms', backoffMax: '1s', ...options.reconcile },
    http: { listen: options.http === false ? null : '127.0.0.1:0' },
    log: { level: options.logLevel ?? 'debug', format: 'json' },
    plugins: Object.fromEntries(specs.map((s) => [s.plugin.name, s.config ?? {}])),
  };
  // weft.yaml refuses a resync under a second (a production safeguard); a test may want one.
  const resyncMs = parseDuration(String(data.reconcile.resync));
  const shortResync = resyncMs !== undefined && resyncMs > 0 && resyncMs < 1000 ? resyncMs : undefined;
  if (shortResync !== undefined) data.reconcile.resync = '1s';
  const byName = new Map(specs.map((s) => [s.plugin.name, s.plugin]));
  const config = await loadConfigText(stringify(data), '<test config>', {
    env: {},
    servicesGiven: new Set((options.services ?? []).map((o) => o.ref.id)),
    resolvePlugin: async ({ key }) => {
      const plugin = byName.get(key);
      if (!plugin) throw new WeftError('WEFT_PLUGIN_UNKNOWN', `unknown plugin "${key}"`);
      return Promise.resolve(plugin);
    },
  });
  return shortResync === undefined ? config : { ...config, core: { ...config.core, reconcile: { ...config.core.reconcile, resync: shortResync } } };
}

/** Starts an agent in this process with the given plugins against a {@link FakeCluster}. */
export async function startTestAgent(options: StartTestAgentOptions): Promise<TestAgent> {
  const self = options.self ?? options.nodes?.[0]?.name ?? 'node-a';
  const ownDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? (await mkdtemp(join(tmpdir(), 'weft-test-')));
  const config = await buildTestConfig({ ...options, self, stateDir });
  const cluster = new FakeCluster(self, options.nodes ?? [{ name: self }]);
  const logs: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  const logger = createLogger(config.core.log, sink);
  const kernel = options.kernel ?? new MemoryKernel();
  const agent = new Agent(config, {
    logger,
    nodeSourceFactory: () => cluster,
    defaultMetrics: false,
    stopTimeoutMs: 1_000,
    kernel,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.services ? { services: options.services } : {}),
  });
  try {
    await agent.start();
  } catch (err) {
    if (ownDir) await rm(stateDir, { recursive: true, force: true });
    throw err;
  }
  const address = agent.http.address();
  const url = address ? `http://127.0.0.1:${address.port}` : undefined;

  const status = (plugin: string): PluginStatus => {
    const s = agent.pluginStatus().find((p) => p.name === plugin);
    if (!s) throw new Error(`no plugin "${plugin}" in this agent`);
    return s;
  };
  const waitFor: TestAgent['waitFor'] = async (predicate, { timeoutMs = 5_000, what = 'condition' } = {}) => {
    const deadline = Date.now() + timeoutMs;
    // Checked after every status or view change, and every 25 ms for conditions outside the agent (HTTP answers).
    let wake: () => void = () => undefined;
    const off = agent.onChange(() => wake());
    try {
      while (!(await predicate())) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(25, left));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      off();
    }
  };

  return {
    agent,
    cluster,
    kernel,
    config,
    url,
    stateDir,
    logs,
    status,
    waitFor,
    async trigger(plugin, { timeoutMs = 5_000 } = {}) {
      const target = status(plugin).runs + 1;
      agent.trigger(plugin, 'test');
      await waitFor(() => status(plugin).runs >= target, { timeoutMs, what: `the triggered reconcile of ${plugin}` });
      return status(plugin);
    },
    async waitForReconcile(plugin, { runs = 1, timeoutMs = 5_000 } = {}) {
      const target = status(plugin).runs + runs;
      await waitFor(() => status(plugin).runs >= target, { timeoutMs, what: `${runs} reconcile(s) of ${plugin}` });
      return status(plugin);
    },
    fetch(path, init) {
      if (!url) throw new Error('this test agent runs without HTTP');
      return fetch(`${url}${path}`, init);
    },
    async stop(stopOptions) {
      await agent.stop(stopOptions);
      if (ownDir) await rm(stateDir, { recursive: true, force: true });
    },
  };
}
export { type FakeApiServer, fakeKubeconfig, type KubeObject, mergePatch, type Resource, startFakeApiServer } from './fake-apiserver.js';
