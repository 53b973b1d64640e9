import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../testing/fake-apiserver.js';
import { definePlugin } from '../api/plugin.js';
import { coreServices, type TriggerService } from '../api/services.js';
import { z } from '../api/schema.js';
import { loadConfigText } from '../config/load.js';
import { MemoryKernel } from '../kernel/memory.js';
import { createLogger } from '../observe/logger.js';
import { Agent } from './agent.js';
import { until } from '../../../test/support/until.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('an agent on the kubernetes source', () => {
  it('keeps reconciling through an API outage, and a publish made during it lands after it', async () => {
    const server = await startFakeApiServer();
    cleanups.push(() => server.close());
    server.put('nodes', { metadata: { name: 'n1', annotations: {} }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    const dir = await mkdtemp(join(tmpdir(), 'weft-k8s-agent-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'kubeconfig'), server.kubeconfig());

    let value = 'v1';
    let trigger: TriggerService = () => undefined;
    const views: number[] = [];
    const publisher = definePlugin({
      name: 'publisher',
      apiVersion: '2',
      description: 'publishes a value',
      config: z.strictObject({}),
      deps: { trigger: coreServices.trigger, publish: coreServices.publish },
      setup({ deps: s }) {
        trigger = s.trigger;
        return {
          async reconcile({ view }) {
            views.push(view.nodes.length);
            await s.publish({ 'weft.io/value': value });
          },
        };
      },
    });
    const text = stringify({
      node: { name: 'n1', stateDir: join(dir, 'state') },
      discovery: { source: 'kubernetes', kubernetes: { kubeconfig: join(dir, 'kubeconfig'), backoffInitial: '50ms', backoffMax: '200ms' } },
      reconcile: { debounce: '10ms', backoffInitial: '50ms', backoffMax: '200ms' },
      http: { listen: null },
      plugins: { publisher: {} },
    });
    const config = await loadConfigText(text, '<k8s>', { env: {}, resolvePlugin: async () => Promise.resolve(publisher) });
    const agent = new Agent(config, { logger: createLogger({ level: 'silent', format: 'json' }, new Writable({ write: (_c, _e, d) => d() })), kernel: new MemoryKernel(), defaultMetrics: false });
    await agent.start();
    cleanups.push(() => agent.stop());
    const annotation = () => server.objects('nodes')[0]?.metadata.annotations as Record<string, string> | undefined;
    await until('v1 published', () => annotation()?.['weft.io/value'] === 'v1');

    await server.stop();
    value = 'v2';
    trigger('test');
    const runs = views.length;
    await until('a reconcile during the outage', () => views.length > runs);
    expect(views.at(-1)).toBe(1); // the last view stays
    // Ready (it serves the last view), and saying it is cut off, since when.
    await until('readiness says disconnected', () => (agent.readiness().checks.discovery?.detail ?? '').startsWith('disconnected'));
    expect(agent.readiness().checks.discovery).toEqual({ ok: true, detail: expect.stringMatching(/^disconnected since \d{4}-\d\d-\d\dT[\d:.]+Z, serving the last view \(1 node\)$/) as string });
    await new Promise((r) => setTimeout(r, 200));
    expect(annotation()?.['weft.io/value']).toBe('v1');

    await server.start();
    await until('v2 published after the outage', () => annotation()?.['weft.io/value'] === 'v2');
    await until('readiness says connected', () => agent.readiness().checks.discovery?.detail === undefined);
  });
});

describe('an agent whose API server is down at boot', () => {
  it('answers /healthz at once, reports /readyz 503 until the first view, then starts its plugins', async () => {
    const server = await startFakeApiServer();
    cleanups.push(() => server.close());
    server.put('nodes', { metadata: { name: 'n1' }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    await server.stop();
    const dir = await mkdtemp(join(tmpdir(), 'weft-k8s-boot-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'kubeconfig'), server.kubeconfig());
    const noop = definePlugin({ name: 'noop', apiVersion: '2', description: 'does nothing', config: z.strictObject({}), setup: () => ({ reconcile: async () => undefined }) });
    const text = stringify({
      node: { name: 'n1', stateDir: join(dir, 'state') },
      discovery: { source: 'kubernetes', kubernetes: { kubeconfig: join(dir, 'kubeconfig'), backoffInitial: '50ms', backoffMax: '100ms' } },
      reconcile: { debounce: '10ms' },
      http: { listen: '127.0.0.1:0' },
      plugins: { noop: {} },
    });
    const config = await loadConfigText(text, '<k8s-boot>', { env: {}, resolvePlugin: async () => Promise.resolve(noop) });
    const agent = new Agent(config, { logger: createLogger({ level: 'silent', format: 'json' }, new Writable({ write: (_c, _e, d) => d() })), kernel: new MemoryKernel(), defaultMetrics: false });
    const started = agent.start();
    cleanups.push(() => agent.stop());
    let port: number | undefined;
    for (let i = 0; i < 100 && port === undefined; i++) {
      port = agent.http.address()?.port;
      if (port === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const notReady = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ checks: { discovery: { ok: false } } });
    await server.start();
    await started;
    const end = Date.now() + 5_000;
    let status = 503;
    while (status !== 200 && Date.now() < end) {
      status = (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(200);
  });
});
