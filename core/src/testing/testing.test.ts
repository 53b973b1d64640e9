import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { startTestAgent, type TestAgent } from './index.js';

const agents: TestAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});

/** Counts its runs and the reasons of each. */
function counter() {
  const runs: string[][] = [];
  const plugin = definePlugin({
    name: 'counter',
    apiVersion: '1',
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
