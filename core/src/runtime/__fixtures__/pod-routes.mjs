// A fixture plugin that owns kernel objects: a bridge, and a route to every other node's pod CIDRs through it.
import { coreServices, definePlugin, z } from '@weft/core';

export default definePlugin({
  name: 'pod-routes',
  apiVersion: '2',
  description: 'test fixture: routes other nodes\' pod CIDRs through a bridge',
  config: z.strictObject({ mtu: z.int().default(1400) }),
  kernel: { linkPrefix: 'wpr', routeProtocol: 199 },
  deps: { kernel: coreServices.kernel },
  setup({ config, deps: { kernel } }) {
    return {
      async reconcile({ view }) {
        await kernel.apply({
          links: [{ kind: 'bridge', name: 'wpr0', mtu: config.mtu }],
          routes: view.nodes.filter((n) => n.name !== view.self.name).flatMap((n) => n.podCIDRs.map((dst) => ({ dst, dev: 'wpr0' }))),
        });
      },
    };
  },
});
