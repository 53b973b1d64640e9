// A plugin fixture whose setup never finishes: the agent is stuck in its start-up until a signal stops it.
import { definePlugin, z } from '@weft/core';

export default definePlugin({
  name: 'never-ready',
  apiVersion: '2',
  description: 'test fixture: setup never settles',
  config: z.strictObject({}),
  setup() {
    return new Promise(() => undefined);
  },
});
