import { afterEach, describe, expect, it } from 'vitest';
import { type OverlayService, overlayServiceRef } from '../api/overlay.js';
import { definePlugin } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { coreServices } from '../api/services.js';
import { FakeClock, mockService, startTestAgent, type TestAgent } from './index.js';

const agents: TestAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});

/** Counts its runs and the reasons of each. */
function counter() {
  const runs: string[][] = [];
  const plugin = definePlugin({
    name: 'counter',
    apiVersion: '2',
    description: 'counts its runs',
    config: z.strictObject({}),
    setup: () => Promise.resolve({ reconcile: ({ reasons }) => Promise.resolve(void runs.push([...reasons])) }),
  });
  return { plugin, runs };
}

describe('the test kit', () => {
  it('trigger(plugin) runs that plugin once and resolves when the run is done; an unknown plugin is an error', async () => {
    const c = counter();
    const t = await startTestAgent({ plugins: [c.plugin], http: false });
    agents.push(t);
    await t.waitForReconcile('counter');
    const before = c.runs.length;
    const status = await t.trigger('counter');
    expect(c.runs.length).toBe(before + 1);
    expect(c.runs.at(-1)).toEqual(['test']);
    expect(status.lastResult).toBe('success');
    await expect(t.trigger('nope')).rejects.toThrow('no plugin "nope" in this agent');
  });

  it('takes a resync under a second, as the scheduler does (weft.yaml refuses one)', async () => {
    const c = counter();
    const t = await startTestAgent({ plugins: [c.plugin], http: false, reconcile: { resync: '100ms' } });
    agents.push(t);
    expect(t.config.core.reconcile.resync).toBe(100);
    await t.waitFor(() => c.runs.filter((r) => r.includes('resync')).length >= 2, { what: 'two resyncs', timeoutMs: 3_000 });
  });
});

describe('the test kit: a fake clock, a replaced service', () => {
  it('a FakeClock moves the reconcile loop: requeueAfter, retry backoff and resync happen when it is advanced, and only then', async () => {
    const clock = new FakeClock();
    const seen: { reasons: string[]; now: number }[] = [];
    let fail = false;
    const plugin = definePlugin({
      name: 'timed',
      apiVersion: '2',
      description: 'requeues itself every minute',
      config: z.strictObject({}),
      deps: { clock: coreServices.clock },
      setup: ({ deps: { clock: c } }) => ({
        reconcile: ({ reasons }) => {
          seen.push({ reasons: [...reasons], now: c.now() });
          return fail ? Promise.reject(new Error('flaky')) : Promise.resolve({ requeueAfter: 60_000 });
        },
      }),
    });
    const t = await startTestAgent({ plugins: [plugin], http: false, clock, reconcile: { resync: '1h', backoffInitial: '10s', backoffMax: '10s' } });
    agents.push(t);
    await clock.advance(0);
    await t.waitFor(() => seen.length === 1, { what: 'the first run' });
    expect(seen[0]).toEqual({ reasons: ['start'], now: Date.UTC(2026, 0, 1) });
    await clock.advance(59_999);
    expect(seen).toHaveLength(1); // a minute has not passed on the clock: nothing, however long the test takes
    await clock.advance(1);
    await t.waitFor(() => seen.length === 2, { what: 'the requeue' });
    expect(seen[1]).toEqual({ reasons: ['requeue'], now: Date.UTC(2026, 0, 1) + 60_000 });
    fail = true;
    await clock.advance(60_000);
    await t.waitFor(() => seen.length === 3, { what: 'the failing run' });
    await clock.advance(5_000 - 1); // backoff: 10 s × jitter in [0.5, 1)
    const afterFailure = seen.length;
    fail = false;
    await clock.advance(5_001);
    await t.waitFor(() => seen.length === afterFailure + 1, { what: 'the retry' });
    expect(seen.at(-1)?.reasons).toEqual(['retry']);
  });

  it('mockService replaces a core service in every setup, and stands in for a service no enabled plugin provides', async () => {
    const published: Record<string, string | null>[] = [];
    const overlay: OverlayService = { interface: 'fake0', self: () => ({ ip4: '100.64.0.1' }), node: () => undefined, onChange: () => () => undefined };
    let got: string | undefined;
    const plugin = definePlugin({
      name: 'consumer',
      apiVersion: '2',
      description: 'publishes what the overlay says',
      config: z.strictObject({}),
      deps: { overlay: overlayServiceRef, publish: coreServices.publish },
      setup: ({ deps }) => ({
        reconcile: async () => {
          got = deps.overlay.self()?.ip4;
          await deps.publish({ 'weft.io/consumer-ip': got ?? null });
        },
      }),
    });
    const t = await startTestAgent({
      plugins: [plugin],
      http: false,
      services: [mockService(coreServices.publish, (patch) => Promise.resolve(void published.push({ ...patch }))), mockService(overlayServiceRef, overlay)],
    });
    agents.push(t);
    await t.waitForReconcile('consumer');
    expect(got).toBe('100.64.0.1');
    expect(published).toEqual([{ 'weft.io/consumer-ip': '100.64.0.1' }]);
  });
});

describe('the test kit: core services declared as deps', () => {
  it("a plugin may declare the core's services in deps; a replaced one is what it gets there too", async () => {
    const clock = new FakeClock(Date.UTC(2030, 0, 1));
    let seen: { now: number; owner: string | undefined } | undefined;
    const plugin = definePlugin({
      name: 'declared',
      apiVersion: '2',
      description: 'declares the core services it uses',
      config: z.strictObject({}),
      kernel: { routeProtocol: 170 },
      deps: { time: coreServices.clock, kernel: coreServices.kernel },
      setup: ({ deps }) => ({
        reconcile: () => Promise.resolve(void (seen = { now: deps.time.now(), owner: deps.kernel.owner?.name })),
      }),
    });
    const t = await startTestAgent({ plugins: [plugin], http: false, services: [mockService(coreServices.clock, clock)] });
    agents.push(t);
    await t.trigger('declared');
    expect(seen).toEqual({ now: Date.UTC(2030, 0, 1), owner: 'declared' });
    expect(() => definePlugin({ name: 'thief', apiVersion: '2', description: 'x', config: z.strictObject({}), provides: [coreServices.kernel], setup: () => ({ reconcile: () => Promise.resolve() }) })).toThrow('definePlugin("thief"): provides core.kernel, a service of the core; a plugin provides services of its own');
  });
});
