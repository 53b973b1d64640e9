import { coreServices, definePlugin, z } from '@weft/core';

const Config = z.strictObject({
  /** Nodes not seen for this long are dropped from the inventory file. */
  forgetAfterDays: z.int().min(1).max(3650).default(30),
});

type Inventory = Record<string, { firstSeen: string; lastSeen: string }>;

/**
 * An example of a third-party plugin, loaded with `module:` like any other: it keeps an inventory of every node it
 * has seen (in its state directory), exports how many nodes are Ready, and serves the inventory at
 * `/api/node-inventory/nodes`. It changes nothing on the node.
 */
export default definePlugin({
  name: 'node-inventory',
  apiVersion: '2',
  description: 'example third-party plugin: remembers every node seen, exports readiness counts',
  config: Config,
  watches: ['nodes'],
  // The services it uses, and so the only ones it gets: no kernel, no annotations.
  deps: { logger: coreServices.logger, metrics: coreServices.metrics, state: coreServices.state, http: coreServices.http },
  async setup({ config, deps: { logger, metrics, state, http } }) {
    const nodes = metrics.gauge({ name: 'weft_inventory_nodes', help: 'Nodes in the cluster view, by readiness', labelNames: ['ready'] });
    const saved = await state.readFile('inventory.json');
    let inventory: Inventory = saved ? (JSON.parse(saved.toString('utf8')) as Inventory) : {};

    http.route('GET', '/nodes', () => ({ json: inventory }));

    return {
      async reconcile({ view }) {
        const now = new Date();
        const next: Inventory = {};
        for (const [name, seen] of Object.entries(inventory)) {
          const age = now.getTime() - Date.parse(seen.lastSeen);
          if (age < config.forgetAfterDays * 86_400_000) next[name] = seen;
        }
        for (const node of view.nodes) {
          next[node.name] = { firstSeen: next[node.name]?.firstSeen ?? now.toISOString(), lastSeen: now.toISOString() };
        }
        nodes.set({ ready: 'true' }, view.nodes.filter((n) => n.ready).length);
        nodes.set({ ready: 'false' }, view.nodes.filter((n) => !n.ready).length);
        const added = Object.keys(next).filter((n) => !(n in inventory));
        if (added.length > 0) logger.info({ added }, 'new nodes in the inventory');
        inventory = next;
        await state.writeFile('inventory.json', JSON.stringify(inventory, null, 2));
      },
    };
  },
});
