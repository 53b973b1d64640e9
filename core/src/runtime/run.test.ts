import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedDataVersionTag } from 'node:v8';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeConfigMap } from '../../../test/support/configmap.js';
import { ConfigError } from '../config/load.js';
import { createLogger } from '../observe/logger.js';
import type { Agent } from './agent.js';
import { runAgent } from './run.js';
import { until } from '../../../test/support/until.js';

const greeter = fileURLToPath(new URL('./__fixtures__/greeter.mjs', import.meta.url));
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function config(stateDir: string, plugins: string[]): string {
  return [
    'node:',
    '  name: ${NODE_NAME}',
    `  stateDir: ${stateDir}`,
    'http:',
    '  listen: 127.0.0.1:0',
    'reconcile:',
    '  debounce: 10ms',
    'log:',
    '  level: debug',
    'plugins:',
    ...plugins,
    '',
  ].join('\n');
}

async function setup(plugins: string[]) {
  const stateDir = await mkdtemp(join(tmpdir(), 'weft-run-'));
  cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
  const cm = await fakeConfigMap({ 'weft.yaml': config(stateDir, plugins) });
  cleanups.push(() => cm.remove());
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      for (const l of chunk.toString().split('\n')) if (l) logs.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const agent = await runAgent({
    configPath: cm.path('weft.yaml'),
    env: { NODE_NAME: 'n1' },
    logger: createLogger({ level: 'debug', format: 'json' }, sink),
    configPollMs: 100,
    handleSignals: false,
    defaultMetrics: false,
  });
  cleanups.push(() => agent.stop());
  return { agent, cm, stateDir, logs };
}


const reloadMetric = async (agent: Agent) => (await agent.metrics.core.configReloadSuccessful.get()).values[0]?.value;

describe('runAgent once ready', () => {
  it('settles (logs it) and leaves the V8 of a process that is not its own alone', async () => {
    // ownProcess (weft run) would turn TurboFan off, which changes V8's flag hash: here it must not.
    const tag = cachedDataVersionTag();
    const { agent, logs } = await setup(['  greeter:', `    module: ${greeter}`, '    greeting: hi']);
    await until('greeter reconciled', () => agent.readiness().ready);
    await until('settled', () => logs.some((l) => l.msg === 'settled after the start'));
    expect(logs.find((l) => l.msg === 'settled after the start')).toMatchObject({ turbofan: true });
    expect(cachedDataVersionTag()).toBe(tag);
  });
});

describe('runAgent with a watched ConfigMap', () => {
  it('refuses an invalid file before anything runs', async () => {
    const cm = await fakeConfigMap({ 'weft.yaml': 'plugins:\n  greeter:\n    module: ./nope.mjs\n' });
    cleanups.push(() => cm.remove());
    const err = await runAgent({ configPath: cm.path('weft.yaml'), env: {}, handleSignals: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/weft\.yaml:3:13 plugins\.greeter\.module: plugin "greeter": cannot import \.\/nope\.mjs/);
  });

  it('applies a valid new config without a restart, and refuses an invalid one keeping the old', async () => {
    const { agent, cm, stateDir, logs } = await setup(['  greeter:', `    module: ${greeter}`, '    greeting: hi']);
    await until('greeter reconciled', () => agent.readiness().ready);
    expect(await reloadMetric(agent)).toBe(1);

    // A valid change: reconfigure greeter, add node-inventory by package name.
    await cm.update({
      'weft.yaml': config(stateDir, ['  greeter:', `    module: ${greeter}`, '    greeting: hello again', '  node-inventory:', '    module: "@weft-examples/node-inventory"']),
    });
    await until('node-inventory running', () => agent.pluginStatus().some((s) => s.name === 'node-inventory' && s.reconciled));
    expect(agent.currentConfig.plugins.map((p) => [p.name, p.config])).toEqual([
      ['greeter', { greeting: 'hello again', port: 8080 }],
      ['node-inventory', { forgetAfterDays: 30 }],
    ]);
    expect(logs.some((l) => l.msg === 'plugin config changed; reconfiguring' && l.plugin === 'greeter')).toBe(true);

    // An invalid change: refused, the running config stays, the metric drops to 0.
    await cm.update({ 'weft.yaml': config(stateDir, ['  greeter:', `    module: ${greeter}`, '    port: abc']) });
    await until('reload refused', async () => (await reloadMetric(agent)) === 0);
    const refused = logs.find((l) => l.msg === 'new config refused; the running config stays');
    expect(refused?.err).toMatch(/weft\.yaml:13:11 plugins\.greeter\.port: expected integer 1-65535, got "abc"/);
    expect(agent.pluginStatus().map((s) => [s.name, s.phase])).toEqual([
      ['greeter', 'running'],
      ['node-inventory', 'running'],
    ]);
    expect(agent.currentConfig.plugins).toHaveLength(2);

    // Fixing the file recovers: removing node-inventory is applied.
    await cm.update({ 'weft.yaml': config(stateDir, ['  greeter:', `    module: ${greeter}`]) });
    await until('reload applied', async () => (await reloadMetric(agent)) === 1);
    expect(agent.pluginStatus().map((s) => s.name)).toEqual(['greeter']);
  });
});
