// The plugin and test from the README's "Writing a plugin", kept here so that the README's code is known to work.
import { expect, it } from 'vitest';
import { definePlugin, duration, z } from '../core/src/index.js';
import { startTestAgent } from '../core/src/testing/index.js';

const hello = definePlugin({
  name: 'hello',
  apiVersion: '1',
  description: 'says hello to every node',
  config: z.strictObject({ greeting: z.string().default('hi'), every: duration().prefault('1m') }),
  watches: ['nodes'],
  kernel: { linkPrefix: 'hi', routeProtocol: 150 },
  async setup({ config, logger, metrics, cluster, kernel, http }) {
    const seen = metrics.gauge({ name: 'weft_hello_nodes', help: 'nodes greeted' });
    http.route('GET', '/status', () => ({ json: { nodes: cluster.current().nodes.length } }));
    return {
      async reconcile({ view }) {
        seen.set(view.nodes.length);
        await kernel.apply({ links: [{ kind: 'bridge', name: 'hi0' }] });
        logger.info({ nodes: view.nodes.map((n) => n.name) }, config.greeting);
        return { requeueAfter: config.every };
      },
      async stop() {},
    };
  },
});

it('the README plugin example works as the README says', async () => {
  const t = await startTestAgent({ plugins: [hello], nodes: [{ name: 'a' }, { name: 'b' }] });
  await t.waitForReconcile('hello');
  t.cluster.setNode({ name: 'c', internalAddresses: ['192.0.2.3'] });
  await t.waitForReconcile('hello');
  expect(await (await t.fetch('/api/hello/status')).json()).toEqual({ nodes: 3 });
  expect(t.kernel.snapshot().links.map((l) => l.name)).toEqual(['hi0']);
  expect(t.logs.some((l) => l.msg === 'hi' && l.plugin === 'hello')).toBe(true);
  await t.stop();
});
