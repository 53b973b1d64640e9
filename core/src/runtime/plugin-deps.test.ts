import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../config/load.js';
import { definePlugin, type PluginDefinition } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { createServiceRef, optionalService, type ServiceRef } from '../api/services.js';
import { buildTestConfig, startTestAgent, type TestAgent } from '../testing/index.js';

interface Greeting {
  readonly text: string;
}
const greetingRef = createServiceRef<Greeting>('test.greeting');
const otherRef = createServiceRef<number>('test.other');

const agents: TestAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});

/** A plugin providing the greeting (its config's text); records what it set up. */
function provider(name: string, events: string[], extra: { deps?: Record<string, ServiceRef<number>> } = {}): PluginDefinition {
  return definePlugin({
    name,
    apiVersion: '2',
    description: 'provides a greeting',
    config: z.strictObject({ text: z.string().default('hello') }),
    provides: [greetingRef],
    ...(extra.deps ? { deps: extra.deps } : {}),
    setup({ config, provide }) {
      events.push(`${name}:setup:${config.text}`);
      provide(greetingRef, { text: config.text });
      return { reconcile: async () => undefined };
    },
  });
}

/** A plugin using the greeting (required or optional); records what it got. */
function consumer(name: string, events: string[], optional = false, provides: ServiceRef<number>[] = []): PluginDefinition {
  return definePlugin({
    name,
    apiVersion: '2',
    description: 'uses a greeting',
    config: z.strictObject({}),
    deps: { greeting: optional ? optionalService(greetingRef) : greetingRef },
    provides,
    setup({ deps, provide }) {
      events.push(`${name}:setup:${(deps.greeting as Greeting | undefined)?.text ?? 'none'}`);
      for (const ref of provides) provide(ref, 1);
      return { reconcile: async () => undefined };
    },
  });
}

const problems = async (plugins: PluginDefinition[]) => {
  const err = await buildTestConfig({ plugins }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ConfigError);
  return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
};

describe('plugins that use services other plugins provide', () => {
  it('are set up after their providers whatever the file order, and get the provided value', async () => {
    const events: string[] = [];
    const t = await startTestAgent({ plugins: [consumer('user', events), { plugin: provider('giver', events), config: { text: 'hi' } }], http: false });
    agents.push(t);
    expect(t.config.plugins.map((p) => p.name)).toEqual(['giver', 'user']);
    expect(events).toEqual(['giver:setup:hi', 'user:setup:hi']);
  });

  it('the dependency table: a missing provider, two providers, a cycle are refused at load naming both ends; an optional one may be absent', async () => {
    expect(await problems([consumer('user', [])])).toEqual(['plugins.user: services: deps.greeting: needs service test.greeting, which no enabled plugin provides']);
    expect(await problems([provider('giver', []), provider('giver2', [])])).toEqual(['plugins.giver2: services: provides test.greeting, which plugin "giver" provides too: enable one of them']);
    // giver needs other, which user provides; user needs giver's greeting.
    expect(await problems([provider('giver', [], { deps: { other: otherRef } }), consumer('user', [], false, [otherRef])])).toEqual([
      'plugins.giver: services: its services form a cycle: "giver" → "user" → "giver" (each needs the next one\'s)',
    ]);
    const events: string[] = [];
    const t = await startTestAgent({ plugins: [consumer('user', events, true)], http: false });
    agents.push(t);
    expect(events).toEqual(['user:setup:none']);
  });

  it('a provider whose setup failed leaves a required user failed with the reason, an optional one running without it', async () => {
    const broken = definePlugin({
      name: 'giver',
      apiVersion: '2',
      description: 'declares a greeting and gives none',
      config: z.strictObject({}),
      provides: [greetingRef],
      setup: () => ({ reconcile: async () => undefined }),
    });
    const events: string[] = [];
    const t = await startTestAgent({
      plugins: [
        { plugin: broken, config: { onBootFailure: 'continue' } },
        { plugin: consumer('user', events), config: { onBootFailure: 'continue' } },
        { plugin: consumer('maybe', events, true), config: {} },
      ],
      http: false,
    });
    agents.push(t);
    expect(t.status('giver')).toMatchObject({ phase: 'failed', lastError: expect.stringContaining('setup did not provide test.greeting') as unknown });
    expect(t.status('user')).toMatchObject({ phase: 'failed', lastError: expect.stringContaining('deps.greeting (test.greeting) is not available: plugin "giver" provides it, and is failed') as unknown });
    expect(t.status('maybe').phase).toBe('running');
    expect(events).toEqual(['maybe:setup:none']);
  });

  it('on reload, a user is set up again when its provider is reconfigured, and when a provider of an optional service arrives', async () => {
    const events: string[] = [];
    const giver = provider('giver', events);
    const user = consumer('user', events);
    const t = await startTestAgent({ plugins: [giver, user], http: false });
    agents.push(t);
    await t.agent.applyConfig(await buildTestConfig({ plugins: [{ plugin: giver, config: { text: 'bonjour' } }, user], stateDir: t.stateDir }));
    expect(events).toEqual(['giver:setup:hello', 'user:setup:hello', 'giver:setup:bonjour', 'user:setup:bonjour']);

    const later: string[] = [];
    const maybe = consumer('maybe', later, true);
    const u = await startTestAgent({ plugins: [maybe], http: false });
    agents.push(u);
    await u.agent.applyConfig(await buildTestConfig({ plugins: [maybe, provider('giver', later)], stateDir: u.stateDir }));
    expect(later).toEqual(['maybe:setup:none', 'giver:setup:hello', 'maybe:setup:hello']);
    expect(u.status('maybe').phase).toBe('running');
  });

  it('definePlugin refuses a dependency that is not a ref, and one on a service the plugin provides itself', () => {
    const base = { name: 'x', apiVersion: '2', description: 'x', config: z.strictObject({}), setup: () => ({ reconcile: async () => undefined }) };
    expect(() => definePlugin({ ...base, deps: { bad: 'test.greeting' as unknown as ServiceRef<unknown> } })).toThrow('definePlugin("x"): deps.bad must be a ref made with createServiceRef, or optionalService(ref)');
    expect(() => definePlugin({ ...base, deps: { self: greetingRef }, provides: [greetingRef] })).toThrow('definePlugin("x"): deps.self: the plugin provides test.greeting itself');
  });
});
