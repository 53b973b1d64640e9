import { startTestAgent, type TestAgent } from '@weft/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import nodeInventory from './index.js';

let t: TestAgent | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

describe('node-inventory (an example third-party plugin, tested with the test kit)', () => {
  it('remembers every node it has seen, across restarts, and exports readiness counts', async () => {
    t = await startTestAgent({ plugins: [nodeInventory], nodes: [{ name: 'a' }, { name: 'b', ready: false }] });
    await t.waitForReconcile('node-inventory');
    t.cluster.setNode({ name: 'c' });
    await t.waitFor(async () => Object.keys((await (await t!.fetch('/api/node-inventory/nodes')).json()) as object).length === 3, {
      what: 'c in the inventory',
    });
    const metrics = await (await t.fetch('/metrics')).text();
    expect(metrics).toMatch(/^weft_inventory_nodes\{ready="true",plugin="node-inventory"\} 2$/m);
    expect(metrics).toMatch(/^weft_inventory_nodes\{ready="false",plugin="node-inventory"\} 1$/m);

    const stateDir = t.stateDir;
    await t.agent.stop();
    // A new agent on the same state directory still knows c, though the cluster no longer lists it.
    t = await startTestAgent({ plugins: [nodeInventory], nodes: [{ name: 'a' }], stateDir });
    await t.waitForReconcile('node-inventory');
    const inventory = (await (await t.fetch('/api/node-inventory/nodes')).json()) as Record<string, unknown>;
    expect(Object.keys(inventory).sort()).toEqual(['a', 'b', 'c']);
  });

  it('refuses a bad config section with the plugin schema', async () => {
    await expect(startTestAgent({ plugins: [{ plugin: nodeInventory, config: { forgetAfterDays: 0 } }] })).rejects.toThrow(
      '<test config>:17:22 plugins.node-inventory.forgetAfterDays: expected a number at least 1, got 0',
    );
  });
});
