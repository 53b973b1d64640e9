// A third-party plugin fixture, loaded by path like a user's own plugin would be.
import { definePlugin, port, z } from '@weft/core';

export default definePlugin({
  name: 'greeter',
  apiVersion: '2',
  description: 'test fixture: counts reconciles',
  config: z.strictObject({ greeting: z.string().default('hello'), port: port().default(8080) }),
  commands: [{ name: 'hello', description: 'ask the agent to greet someone', arguments: [{ name: 'who', description: 'whom to greet' }], path: ([who]) => `/hello?who=${encodeURIComponent(who)}` }],
  setup({ config }) {
    let runs = 0;
    return {
      async reconcile() {
        runs += 1;
        return undefined;
      },
      async stop() {
        return { runs, greeting: config.greeting };
      },
    };
  },
});
