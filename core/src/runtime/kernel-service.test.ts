import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin, type PluginDefinition } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { coreServices } from '../api/services.js';
import { ConfigError, loadConfigText } from '../config/load.js';
import { createLogger } from '../observe/logger.js';
import { MemoryKernel } from '../kernel/memory.js';
import { buildTestConfig, startTestAgent, type TestAgent } from '../testing/index.js';
import { formatPlan, planConfig, planToJson } from './plan.js';
import { generateWireGuardKeyPair } from '../kernel/wgkeys.js';
import { loadPlugin } from '../config/plugin-loader.js';

const fixtures = fileURLToPath(new URL('./__fixtures__/', import.meta.url));
const podRoutes = await loadPlugin({ key: 'pod-routes', module: './pod-routes.mjs', baseDir: fixtures });
const nodes = [
  { name: 'n1', podCIDRs: ['198.18.1.0/24'] },
  { name: 'n2', podCIDRs: ['198.18.2.0/24', '2001:db8:2::/64'] },
];

let t: TestAgent | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

const routesIn = (k: MemoryKernel) => k.snapshot().routes.map((r) => `${r.dst} dev ${r.dev ?? ''} proto ${r.proto}`).sort();

describe('the kernel service in another namespace (a pod\'s)', () => {
  it('applies there with the same ownership, refuses a path that is not one, fails where the namespace is gone', async () => {
    const seen: { ok?: unknown; bad?: string; gone?: string } = {};
    const kernel = new MemoryKernel();
    const pod = kernel.addNamespace('/run/netns/pod-1');
    const inPods = definePlugin({
      name: 'in-pods',
      apiVersion: '2',
      description: 'puts a dummy link in a pod',
      config: z.object({}),
      kernel: { linkPrefix: 'wip', routeProtocol: 198 },
      deps: { kernel: coreServices.kernel },
      setup: ({ deps }) => ({
        async reconcile() {
          seen.ok = (await deps.kernel.namespace('/run/netns/pod-1').apply({ links: [{ kind: 'dummy', name: 'wip0' }], addresses: [{ dev: 'wip0', address: '203.0.113.80/32' }] })).changes.length;
          seen.bad = (() => {
            try {
              deps.kernel.namespace('/run/netns/../../etc/passwd');
              return 'accepted';
            } catch (err) {
              return (err as Error).message;
            }
          })();
          seen.gone = await deps.kernel.namespace('/run/netns/pod-2').apply({}).then(() => 'applied', (err: unknown) => (err as Error).message);
        },
      }),
    });
    t = await startTestAgent({ plugins: [inPods], nodes, kernel });
    await t.waitFor(() => seen.gone !== undefined);
    expect(seen.ok).toBe(2);
    expect(pod.snapshot().addresses).toEqual([{ dev: 'wip0', address: '203.0.113.80/32' }]);
    expect(kernel.snapshot().links).toEqual([]);
    expect(seen.bad).toMatch(/namespace "\/run\/netns\/..\/..\/etc\/passwd": expected a path like \/run\/netns\/NAME/);
    expect(seen.gone).toMatch(/nsenter: cannot open \/run\/netns\/pod-2/);
  });
});

describe('the kernel service', () => {
  it('applies a plugin desired state to its namespace, follows the cluster, and counts changes', async () => {
    t = await startTestAgent({ plugins: [podRoutes], nodes });
    await t.waitFor(() => t!.agent.readiness().ready);
    expect(routesIn(t.kernel)).toEqual(['198.18.2.0/24 dev wpr0 proto 199', '2001:db8:2::/64 dev wpr0 proto 199']);
    t.cluster.setNode({ name: 'n3', podCIDRs: ['198.18.3.0/24'] });
    await t.waitFor(() => routesIn(t!.kernel).length === 3, { what: 'the route to n3' });
    const metrics = await (await t.fetch('/metrics')).text();
    expect(metrics).toMatch(/^weft_kernel_changes_total\{owner="pod-routes",kind="route",op="add"\} 3$/m);
    expect(metrics).toMatch(/^weft_kernel_changes_total\{owner="pod-routes",kind="link",op="add"\} 1$/m);
  });

  it('counts a change the kernel refused (weft_kernel_apply_failures_total), and the retry converges', async () => {
    t = await startTestAgent({ plugins: [podRoutes], nodes, reconcile: { backoffInitial: '10ms', backoffMax: '50ms' } });
    await t.waitFor(() => t!.agent.readiness().ready);
    t.kernel.failOnce('route 198.18.3.0/24 table 254 metric 0', 'RTNETLINK answers: Invalid argument');
    t.cluster.setNode({ name: 'n3', podCIDRs: ['198.18.3.0/24'] });
    await t.waitFor(() => routesIn(t!.kernel).length === 3, { what: 'the route to n3 after the retry' });
    const metrics = await (await t.fetch('/metrics')).text();
    expect(metrics).toMatch(/^weft_kernel_apply_failures_total\{owner="pod-routes",kind="route"\} 1$/m);
    expect(metrics).toMatch(/^weft_kernel_changes_total\{owner="pod-routes",kind="route",op="add"\} 3$/m);
  });

  it('heals drift at the next reconcile', async () => {
    t = await startTestAgent({ plugins: [podRoutes], nodes, reconcile: { resync: '1s' } });
    await t.waitFor(() => t!.agent.readiness().ready);
    t.kernel.drift((s) => s.routes.splice(0, 1));
    await t.waitFor(() => routesIn(t!.kernel).length === 2, { what: 'the route back', timeoutMs: 5_000 });
  });

  it('removes everything a plugin owns when it is switched off, and leaves it on shutdown', async () => {
    t = await startTestAgent({ plugins: [podRoutes], nodes });
    await t.waitFor(() => t!.agent.readiness().ready);
    const base = t.agent.currentConfig;
    await t.agent.applyConfig({ ...base, plugins: [] });
    expect(t.kernel.snapshot().links).toEqual([]);
    expect(routesIn(t.kernel)).toEqual([]);

    const kernel = new MemoryKernel();
    const second = await startTestAgent({ plugins: [podRoutes], nodes, kernel });
    await second.waitFor(() => second.agent.readiness().ready);
    await second.stop();
    expect(routesIn(kernel)).toHaveLength(2);
  });

  it('refuses kernel.apply from a plugin that declares no ownership', async () => {
    const rogue = definePlugin({
      name: 'rogue',
      apiVersion: '2',
      description: 'applies without owning',
      config: z.strictObject({}),
      deps: { kernel: coreServices.kernel },
      setup: ({ deps: { kernel } }) => ({ reconcile: async () => void (await kernel.apply({ links: [{ kind: 'bridge', name: 'x0' }] })) }),
    });
    t = await startTestAgent({ plugins: [rogue] });
    const s = await t.waitForReconcile('rogue');
    expect(s.lastError).toBe('plugin "rogue" declares no kernel ownership (definePlugin({ kernel: { linkPrefix, routeProtocol } }))');
  });

  it('refuses a config whose plugins claim overlapping ownership', async () => {
    const clone = (name: string, kernel: PluginDefinition['kernel']) =>
      definePlugin({ name, apiVersion: '2', description: 'x', config: z.strictObject({}), kernel, setup: () => ({ reconcile: async () => undefined }) });
    const plugins = [clone('a', { linkPrefix: 'wa', routeProtocol: 120, rulePriorities: [100, 199] }), clone('b', { linkPrefix: 'wab', routeProtocol: 120, rulePriorities: [150, 250] })];
    const err = await buildTestConfig({ plugins }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems.map((p) => p.message)).toEqual([
      'kernel ownership: link prefix "wab" overlaps plugin "a"\'s "wa"',
      'kernel ownership: route protocol 120 is also plugin "a"\'s',
      'kernel ownership: rule priorities 150-250 overlap plugin "a"\'s 100-199',
    ]);
    expect(() => clone('c', { linkPrefix: 'BAD', routeProtocol: 5 })).toThrow(/kernel ownership: linkPrefix "BAD": expected 1-8 of a-z, 0-9, -; routeProtocol 5: expected an integer 100-199/);
  });
});

describe('weft plan', () => {
  it('reports the changes each plugin would make and changes nothing', async () => {
    const kernel = new MemoryKernel();
    await kernel.apply({ name: 'pod-routes', linkPrefix: 'wpr', routeProtocol: 199 }, { links: [{ kind: 'bridge', name: 'wpr0', mtu: 1500 }], routes: [{ dst: '198.18.9.0/24', dev: 'wpr0' }] });
    const before = kernel.snapshot();
    const text = `node:\n  name: n1\ndiscovery:\n  static:\n    nodes:\n      - {name: n1, podCIDRs: [198.18.1.0/24]}\n      - {name: n2, podCIDRs: [198.18.2.0/24]}\nplugins:\n  pod-routes:\n    module: ./pod-routes.mjs\n  greeter:\n    module: ./greeter.mjs\n`;
    const config = await loadConfigText(text, 'weft.yaml', { env: {}, baseDir: fixtures });
    const plans = await planConfig(config, { kernel, logger: createLogger({ level: 'silent', format: 'json' }) });
    expect(formatPlan(plans)).toBe(
      [
        'pod-routes: 3 changes',
        '  - route 198.18.9.0/24 table 254 metric 0',
        '  ~ link wpr0 (mtu)',
        '  + route 198.18.2.0/24 table 254 metric 0',
        'greeter: owns nothing in the kernel',
        '',
      ].join('\n'),
    );
    expect(kernel.snapshot()).toEqual(before);
    expect(kernel.log).toHaveLength(2);
  });
});

describe('kernel.require', () => {
  it('names what the machine lacks and how to fix it', async () => {
    const needy = definePlugin({
      name: 'needy',
      apiVersion: '2',
      description: 'needs GRE and MPLS',
      config: z.strictObject({}),
      kernel: { linkPrefix: 'wn', routeProtocol: 170 },
      deps: { kernel: coreServices.kernel },
      async setup({ deps: { kernel } }) {
        await kernel.require('gre', 'mpls', 'bridge');
        return { reconcile: async () => undefined };
      },
    });
    const kernel = new MemoryKernel();
    kernel.unsupported = new Set(['gre', 'mpls']);
    await expect(startTestAgent({ plugins: [needy], kernel })).rejects.toMatchObject({
      code: 'WEFT_KERNEL_UNSUPPORTED',
      message:
        'plugin "needy" needs what this machine lacks (kernel in-memory; see weft doctor):\n  link gre: unsupported (test) (fix: provide gre)\n  mpls: unsupported (test) (fix: provide mpls)',
    });
  });
});

describe('weft plan --json', () => {
  it('names each change without its object, so that no key is ever printed', () => {
    const key = generateWireGuardKeyPair().privateKey;
    const json = JSON.stringify(
      planToJson([
        {
          plugin: 'wireguard',
          owns: true,
          changes: [{ op: 'set', kind: 'wireguard', id: 'wireguard wg0', fields: ['privateKey'], object: { name: 'wg0', privateKey: key, peers: [] } }],
        },
      ]),
    );
    expect(json).toBe('{"plans":[{"plugin":"wireguard","owns":true,"changes":[{"op":"set","kind":"wireguard","id":"wireguard wg0","fields":["privateKey"]}]}]}');
    expect(json).not.toContain(key);
  });
});
