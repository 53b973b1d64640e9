import { definePlugin, z } from '@weft/core';

export default definePlugin({
  name: 'future-api',
  apiVersion: '3',
  description: 'test fixture: written for a plugin API this core does not speak',
  config: z.strictObject({}),
  setup: () => ({ reconcile: async () => undefined }),
});
