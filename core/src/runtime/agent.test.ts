import { afterEach, describe, expect, it, vi } from 'vitest';
import { TerminalError, WeftError } from '../api/errors.js';
import { definePlugin, type PluginDefinition, type ReconcileContext } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { buildTestConfig, startTestAgent, type TestAgent } from '../testing/index.js';

/** A plugin that records what happens to it; `behaviour` scripts its reconcile. */
function recorder(name: string, events: string[], behaviour: (ctx: ReconcileContext) => Promise<unknown> = async () => undefined): PluginDefinition {
  return definePlugin({
    name,
    apiVersion: '2',
    description: `records ${name}`,
    config: z.strictObject({ level: z.int().default(1) }),
    setup({ config }) {
      events.push(`${name}:setup:${config.level}`);
      return {
        reconcile: async (ctx) => {
          events.push(`${name}:reconcile`);
          return (await behaviour(ctx)) as undefined;
        },
        stop: async ({ cleanup }) => {
          events.push(`${name}:stop:${cleanup ? 'cleanup' : 'keep'}`);
          await Promise.resolve();
        },
      };
    },
  });
}

let agents: TestAgent[] = [];
async function start(...args: Parameters<typeof startTestAgent>): Promise<TestAgent> {
  const t = await startTestAgent(...args);
  agents.push(t);
  return t;
}
afterEach(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  agents = [];
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Agent', () => {
  it('sets plugins up in config order, reconciles each, and becomes ready', async () => {
    const events: string[] = [];
    const t = await start({ plugins: [recorder('a', events), recorder('b', events)], http: false });
    await t.waitFor(() => t.agent.readiness().ready, { what: 'ready' });
    expect(events.slice(0, 2)).toEqual(['a:setup:1', 'b:setup:1']);
    expect(events).toContain('a:reconcile');
    expect(events).toContain('b:reconcile');
    expect(t.agent.readiness().checks).toMatchObject({ discovery: { ok: true }, 'plugin:a': { ok: true }, 'plugin:b': { ok: true } });
  });

  it('gives the reconcile the latest view, and reconciles again when the cluster changes', async () => {
    const seen: number[] = [];
    const t = await start({
      plugins: [recorder('a', [], async ({ view }) => void seen.push(view.nodes.length))],
      nodes: [{ name: 'n1' }],
      http: false,
    });
    await t.waitForReconcile('a');
    t.cluster.setNode({ name: 'n2' });
    t.cluster.setNode({ name: 'n3' });
    await t.waitFor(() => seen.at(-1) === 3, { what: 'a run that sees 3 nodes' });
    expect(seen[0]).toBe(1);
  });

  it('stops plugins in reverse order, leaves the data plane by default, and is idempotent', async () => {
    const events: string[] = [];
    const t = await start({ plugins: [recorder('a', events), recorder('b', events), recorder('c', events)], http: false });
    await t.waitFor(() => t.agent.readiness().ready);
    await Promise.all([t.agent.stop(), t.agent.stop()]);
    await t.agent.stop();
    expect(events.filter((e) => e.includes(':stop:'))).toEqual(['c:stop:keep', 'b:stop:keep', 'a:stop:keep']);
  });

  it('keeps other plugins reconciling while one throws and another hangs', async () => {
    const t = await start({
      plugins: [
        recorder('thrower', [], () => Promise.reject(new Error('broken'))),
        recorder('hanger', [], () => new Promise(() => undefined)),
        recorder('healthy', [], async () => ({ requeueAfter: 20 })),
      ],
      http: false,
    });
    await t.waitForReconcile('healthy', { runs: 5 });
    expect(t.status('thrower')).toMatchObject({ phase: 'running', lastResult: 'error', lastError: 'broken' });
    expect(t.status('hanger').runs).toBe(0);
    expect(t.agent.readiness().ready).toBe(false);
  });

  it('counts results in weft_reconcile_total and sets weft_plugin_up', async () => {
    let fail = true;
    const t = await start({
      plugins: [recorder('flaky', [], () => (fail ? Promise.reject(new Error('not yet')) : Promise.resolve()))],
      http: false,
    });
    await t.waitForReconcile('flaky');
    const up = async () => (await t.agent.metrics.core.pluginUp.get()).values.find((v) => v.labels.plugin === 'flaky')?.value;
    expect(await up()).toBe(0);
    fail = false;
    await t.waitFor(() => t.status('flaky').lastResult === 'success', { what: 'a successful retry' });
    expect(await up()).toBe(1);
    const totals = (await t.agent.metrics.core.reconcileTotal.get()).values.filter((v) => v.labels.plugin === 'flaky');
    expect(totals.find((v) => v.labels.result === 'error')?.value).toBeGreaterThanOrEqual(1);
    expect(totals.find((v) => v.labels.result === 'success')?.value).toBe(1);
  });

  it('does not retry a terminal error', async () => {
    const t = await start({ plugins: [recorder('t', [], () => Promise.reject(new TerminalError('never works')))], http: false });
    await t.waitForReconcile('t');
    await sleep(300); // backoff is 50 ms in tests: a retry would have run by now
    expect(t.status('t')).toMatchObject({ runs: 1, lastResult: 'terminal' });
  });

  it('a desired state the driver refuses is terminal: logged once while it stays the same, again when it changes', async () => {
    let message = 'route 198.18.5.1/24: host bits set';
    const t = await start({ plugins: [recorder('k', [], () => Promise.reject(new WeftError('WEFT_KERNEL_INPUT', message)))], http: false });
    await t.waitForReconcile('k');
    await sleep(300); // no retry with backoff (50 ms in tests)
    expect(t.status('k')).toMatchObject({ runs: 1, lastResult: 'terminal' });
    const errors = () => t.logs.filter((l) => l.msg === 'reconcile failed terminally; waiting for the next change').length;
    expect(errors()).toBe(1);
    // Triggers (a cluster change, a resync) run it again: the same refusal is not logged at error level again.
    t.cluster.setNode({ name: 'n9', internalAddresses: ['192.0.2.9'] });
    await t.waitForReconcile('k');
    expect(t.status('k').runs).toBe(2);
    expect(errors()).toBe(1);
    message = 'route 198.18.6.1/24: host bits set';
    t.cluster.setNode({ name: 'n10', internalAddresses: ['192.0.2.10'] });
    await t.waitForReconcile('k');
    expect(errors()).toBe(2);
    const totals = (await t.agent.metrics.core.reconcileTotal.get()).values.filter((v) => v.labels.plugin === 'k');
    expect(totals.find((v) => v.labels.result === 'terminal')?.value).toBe(3);
  });

  describe('boot failures', () => {
    const failing = (name: string, how: 'throw' | 'hang') =>
      definePlugin({
        name,
        apiVersion: '2',
        description: 'fails to set up',
        config: z.strictObject({}),
        setup: () => (how === 'throw' ? Promise.reject(new Error('no wireguard-go')) : new Promise(() => undefined)),
      });

    it('aborts the start when a plugin with onBootFailure: abort fails, stopping what had started', async () => {
      const events: string[] = [];
      const err = await startTestAgent({ plugins: [recorder('a', events), failing('bad', 'throw')], http: false }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'WEFT_PLUGIN_SETUP_FAILED', message: 'plugin "bad": setup failed: no wireguard-go' });
      expect(events).toEqual(['a:setup:1', 'a:stop:keep']);
    });

    it('times a hanging setup out', async () => {
      const err = await startTestAgent({ plugins: [{ plugin: failing('slow', 'hang'), config: { setupTimeout: '50ms' } }], http: false }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'WEFT_PLUGIN_SETUP_TIMEOUT', message: 'plugin "slow": setup did not finish within 50 ms' });
    });

    it('runs the others with onBootFailure: continue, reports the failed one, and retries its setup', async () => {
      let attempts = 0;
      const flakySetup = definePlugin({
        name: 'flaky-setup',
        apiVersion: '2',
        description: 'fails its first two setups',
        config: z.strictObject({}),
        setup: () => {
          attempts += 1;
          if (attempts <= 2) throw new Error(`attempt ${attempts} failed`);
          return { reconcile: async () => undefined };
        },
      });
      const events: string[] = [];
      const t = await start({ plugins: [{ plugin: flakySetup, config: { onBootFailure: 'continue' } }, recorder('a', events)], http: false });
      expect(t.status('flaky-setup').phase).toBe('failed');
      await t.waitForReconcile('a');
      await t.waitFor(() => t.status('flaky-setup').phase === 'running' && t.status('flaky-setup').reconciled, { what: 'setup retried' });
      expect(attempts).toBe(3);
    });
  });

  describe('applyConfig (hot reload)', () => {
    it('adds, removes and reconfigures plugins, leaving unchanged ones alone', async () => {
      const events: string[] = [];
      const [a, b, c] = [recorder('a', events), recorder('b', events), recorder('c', events)];
      const t = await start({ plugins: [a, b], http: false });
      await t.waitFor(() => t.agent.readiness().ready);
      const next = await buildTestConfig({ plugins: [{ plugin: a, config: { level: 2 } }, c] });
      events.length = 0;
      await t.agent.applyConfig({ ...next, core: t.agent.currentConfig.core });
      await t.waitFor(() => t.agent.readiness().ready, { what: 'ready after reload' });
      expect(events.slice(0, 4)).toEqual(['b:stop:cleanup', 'a:stop:keep', 'a:setup:2', 'c:setup:1']);
      expect(t.agent.pluginStatus().map((s) => s.name)).toEqual(['a', 'c']);

      events.length = 0;
      const same = await buildTestConfig({ plugins: [{ plugin: a, config: { level: 2 } }, c] });
      await t.agent.applyConfig({ ...same, core: t.agent.currentConfig.core });
      expect(events.filter((e) => !e.endsWith(':reconcile'))).toEqual([]);
    });

    it('keeps the HTTP server on its address when the new one is taken, and applies the rest', async () => {
      const { createServer } = await import('node:net');
      const blocker = createServer();
      await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
      const taken = (blocker.address() as { port: number }).port;
      const events: string[] = [];
      const t = await start({ plugins: [recorder('a', events)] });
      await t.waitForReconcile('a');
      const base = t.agent.currentConfig;
      const next = await buildTestConfig({ plugins: [recorder('b', events)] });
      await t.agent.applyConfig({ ...next, core: { ...base.core, http: { ...base.core.http, listen: `127.0.0.1:${taken}`, socket: null } } });
      expect((await t.fetch('/healthz')).status).toBe(200);
      expect(t.agent.currentConfig.core.http.listen).toBe(base.core.http.listen);
      expect(t.agent.pluginStatus().map((s) => s.name)).toEqual(['b']);
      expect((await t.agent.metrics.core.configReloadSuccessful.get()).values[0]?.value).toBe(0);
      await new Promise((r) => blocker.close(r));
    });

    it('applies new reconcile settings and log level without touching plugins', async () => {
      const events: string[] = [];
      const a = recorder('a', events);
      const t = await start({ plugins: [a], http: false });
      await t.waitForReconcile('a');
      const base = t.agent.currentConfig;
      await t.agent.applyConfig({ ...base, core: { ...base.core, log: { ...base.core.log, level: 'warn' }, reconcile: { ...base.core.reconcile, resync: 1000 } } });
      expect(t.agent.logger.level).toBe('warn');
      expect(events.filter((e) => e.includes('setup'))).toEqual(['a:setup:1']);
    });
  });
});

describe('the scratch directory', () => {
  it("is under the state directory, and what a killed agent left there (a key file) is gone when the next one starts", async () => {
    const { mkdtemp, mkdir, writeFile, readdir, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { scratchDir } = await import('./agent.js');
    const stateDir = await mkdtemp(path.join(tmpdir(), 'weft-scratch-'));
    try {
      const config = await buildTestConfig({ plugins: [], stateDir });
      const scratch = scratchDir(config.core);
      expect(scratch).toBe(path.join(stateDir, 'tmp'));
      await mkdir(path.join(scratch, 'weft-wg-abc'), { recursive: true });
      await writeFile(path.join(scratch, 'weft-wg-abc', 'k0'), 'a private key\n', { mode: 0o600 });
      await start({ plugins: [recorder('a', [])], stateDir });
      expect(await readdir(stateDir)).not.toContain('tmp');
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});

describe('a stop during the start', () => {
  it('while discovery still waits for its first view: start rejects with StartInterrupted, the source is stopped, the agent is stopped', async () => {
    const { Agent, StartInterrupted } = await import('./agent.js');
    const { createLogger } = await import('../observe/logger.js');
    const { Writable } = await import('node:stream');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const stateDir = await mkdtemp(path.join(tmpdir(), 'weft-interrupt-'));
    let stopped = 0;
    const neverSyncs = {
      start: () => new Promise<void>(() => undefined),
      current: () => {
        throw new Error('not synced');
      },
      synced: () => false,
      publish: async () => undefined,
      stop: async () => {
        stopped++;
      },
    };
    try {
      const config = await buildTestConfig({ plugins: [recorder('a', [])], stateDir });
      const agent = new Agent(
        { ...config, core: { ...config.core, http: { ...config.core.http, listen: '127.0.0.1:0' } } },
        { logger: createLogger({ level: 'silent', format: 'json' }, new Writable({ write: (_c, _e, done) => done() })), nodeSourceFactory: () => neverSyncs, defaultMetrics: false },
      );
      const starting = agent.start();
      await new Promise((r) => setTimeout(r, 50));
      await agent.stop();
      await expect(starting).rejects.toBeInstanceOf(StartInterrupted);
      await agent.stopped;
      expect(stopped).toBe(1);
      expect(agent.http.address()).toBeUndefined();
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});

describe("a plugin's reads", () => {
  it('a cluster change that touches nothing the plugin reads does not run it, and is counted; one that does, runs it', async () => {
    const events: string[] = [];
    const reader = definePlugin({
      name: 'reader',
      apiVersion: '2',
      description: 'reads one annotation',
      config: z.strictObject({}),
      reads: { annotations: ['example.com/mine'], labels: [], fields: ['podCIDRs'] },
      setup: () => ({
        reconcile: async ({ reasons }) => {
          events.push([...reasons].sort().join('+'));
          await Promise.resolve();
        },
      }),
    });
    const t = await start({ plugins: [reader], nodes: [{ name: 'node-a' }, { name: 'node-b' }] });
    await t.waitForReconcile('reader');
    await new Promise((r) => setTimeout(r, 100));
    const runs = t.status('reader').runs;
    // Someone else's annotation, a label, readiness: nothing the plugin reads.
    t.cluster.setNode({ name: 'node-b', annotations: { 'example.com/other': '1' } });
    t.cluster.setNode({ name: 'node-b', annotations: { 'example.com/other': '2' }, labels: { team: 'x' }, ready: false });
    await new Promise((r) => setTimeout(r, 200));
    expect(t.status('reader').runs).toBe(runs);
    expect(await (await t.fetch('/metrics')).text()).toMatch(/^weft_cluster_changes_skipped_total\{plugin="reader"\} 2$/m);
    // Its own annotation: it runs.
    t.cluster.setNode({ name: 'node-b', annotations: { 'example.com/other': '2', 'example.com/mine': 'x' }, labels: { team: 'x' }, ready: false });
    await t.waitForReconcile('reader');
    expect(events.at(-1)).toBe('cluster');
    // A node joins: it runs, whatever it carries.
    t.cluster.setNode({ name: 'node-c' });
    await t.waitForReconcile('reader');
  });
});

describe('what discovery holds', () => {
  const reading = (name: string, annotations: string[]) =>
    definePlugin({ name, apiVersion: '2', description: `reads ${annotations.join(', ')}`, config: z.strictObject({}), reads: { annotations, labels: [] }, setup: () => ({ reconcile: async () => undefined }) });

  it('the source is told what the plugins read, and started again when a reload widens it', async () => {
    const [a, b] = [reading('a', ['example.com/a']), reading('b', ['example.com/b', 'example.com/a'])];
    const t = await start({ plugins: [a], http: false });
    await t.waitForReconcile('a');
    const restarted = vi.spyOn(t.cluster, 'start');
    const same = await buildTestConfig({ plugins: [a] });
    await t.agent.applyConfig({ ...same, core: t.agent.currentConfig.core });
    expect(restarted).not.toHaveBeenCalled();
    const wider = await buildTestConfig({ plugins: [a, b] });
    await t.agent.applyConfig({ ...wider, core: t.agent.currentConfig.core });
    expect(restarted).toHaveBeenCalledTimes(1);
    expect(restarted.mock.calls[0]?.[0]).toEqual(new Set(['nodes']));
    expect(restarted.mock.calls[0]?.[2]).toEqual({ annotations: ['example.com/a', 'example.com/b'], labels: [] });
    await t.waitForReconcile('b');
    // The source still speaks to the agent after the restart.
    const runs = t.status('b').runs;
    t.cluster.setNode({ name: 'node-x', annotations: { 'example.com/b': '1' } });
    await t.waitFor(() => t.status('b').runs > runs, { what: 'b runs for the new node' });
  });
});
