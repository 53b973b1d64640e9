import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { coreServices } from '../api/services.js';
import { loadConfigText } from '../config/load.js';
import { MemoryKernel } from '../kernel/memory.js';
import { createLogger } from '../observe/logger.js';
import { Agent } from './agent.js';

/** Publishes its node's name, and remembers what every node announced. */
const seen = new Map<string, Record<string, string>>();
const announcer = definePlugin({
  name: 'announcer',
  apiVersion: '2',
  description: 'publishes weft.io/announce',
  config: z.strictObject({}),
  deps: { publish: coreServices.publish, cluster: coreServices.cluster },
  setup({ deps: { publish, cluster } }) {
    return {
      async reconcile({ view }) {
        await publish({ 'weft.io/announce': `hello from ${cluster.current().self.name}` });
        seen.set(view.self.name, Object.fromEntries(view.nodes.map((n) => [n.name, n.annotations['weft.io/announce'] ?? ''])));
      },
    };
  },
});

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  seen.clear();
});

async function agent(name: string, dir: string): Promise<Agent> {
  const text = stringify({
    node: { name, stateDir: join(dir, `state-${name}`) },
    discovery: { source: 'directory', directory: { path: join(dir, 'nodes'), rescan: '1s', self: { internalAddresses: ['192.0.2.1'] } } },
    reconcile: { debounce: '10ms' },
    http: { listen: null },
    plugins: { announcer: {} },
  });
  const config = await loadConfigText(text, `<${name}>`, { env: {}, resolvePlugin: async () => Promise.resolve(announcer) });
  const logger = createLogger({ level: 'silent', format: 'json' }, new Writable({ write: (_c, _e, d) => d() }));
  const a = new Agent(config, { logger, kernel: new MemoryKernel(), defaultMetrics: false });
  await a.start();
  cleanups.push(() => a.stop());
  return a;
}

describe('agents sharing a node directory', () => {
  it("see each other's published annotations, and a removed plugin's keys go away", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-agents-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const a = await agent('n1', dir);
    await agent('n2', dir);
    const expected = { n1: 'hello from n1', n2: 'hello from n2' };
    const end = Date.now() + 10_000;
    while (JSON.stringify(seen.get('n1')) !== JSON.stringify(expected) || JSON.stringify(seen.get('n2')) !== JSON.stringify(expected)) {
      if (Date.now() > end) throw new Error(`not converged: ${JSON.stringify([...seen])}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await a.applyConfig({ ...a.currentConfig, plugins: [] });
    // Generous: CI runs this beside the VM suite on two cores, where 5 s has not been enough.
    expect(await a.publisher.flushed(12_000)).toBe(true);
    // Written; the source shows it once it has read the document back.
    for (let i = 0; i < 250 && Object.keys(a.view().self.annotations).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(a.view().self.annotations).toEqual({});
  }, 40_000); // the convergence and the flush above may take up to their own deadlines on a loaded machine
});
