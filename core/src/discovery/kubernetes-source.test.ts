import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startFakeApiServer } from '../testing/fake-apiserver.js';
import { CoreConfigSchema } from '../config/schema.js';
import { createLogger } from '../observe/logger.js';
import { MetricsHub } from '../observe/metrics.js';
import { KubeClient } from './kube-client.js';
import { endpointSliceInfo, KubernetesNodeSource, serviceInfo } from './kubernetes-source.js';
import type { NodeReads } from './reads.js';
import { until } from '../../../test/support/until.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const k8sNode = (name: string, o: { ready?: boolean; podCIDRs?: string[]; labels?: Record<string, string>; annotations?: Record<string, string>; created?: string } = {}) => ({
  metadata: { name, labels: o.labels ?? {}, annotations: o.annotations ?? {}, ...(o.created ? { creationTimestamp: o.created } : {}) },
  spec: { podCIDRs: o.podCIDRs ?? [] },
  status: {
    addresses: [
      { type: 'InternalIP', address: '192.0.2.10' },
      { type: 'InternalIP', address: '2001:db8::10' },
      { type: 'ExternalIP', address: '203.0.113.10' },
      { type: 'Hostname', address: name },
    ],
    conditions: [{ type: 'Ready', status: o.ready === false ? 'False' : 'True' }],
  },
});

async function setup(watches: string[] = ['nodes'], options: Parameters<typeof startFakeApiServer>[0] = {}, backoff = { backoffInitial: '50ms', backoffMax: '200ms' }) {
  const server = await startFakeApiServer(options);
  cleanups.push(() => server.close());
  const dir = await mkdtemp(join(tmpdir(), 'weft-k8s-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'kubeconfig'), server.kubeconfig());
  const settings = CoreConfigSchema.parse({ discovery: { source: 'kubernetes', kubernetes: { kubeconfig: join(dir, 'kubeconfig'), ...backoff } } }).discovery.kubernetes;
  const metrics = new MetricsHub('test', { defaultMetrics: false });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', format: 'json' }, new Writable({ write: (c: Buffer, _e, d) => (logs.push(JSON.parse(c.toString()) as Record<string, unknown>), d()) }));
  const source = new KubernetesNodeSource('n1', settings, logger, metrics);
  const changes: number[] = [];
  return {
    server,
    metrics,
    logs,
    source,
    changes,
    start: async (reads?: NodeReads) => {
      await source.start(new Set(watches as never[]), (v) => changes.push(v.revision), reads);
      cleanups.push(() => source.stop());
    },
  };
}

const names = (s: KubernetesNodeSource) => s.current().nodes.map((n) => n.name);
const nodeLists = (server: Awaited<ReturnType<typeof startFakeApiServer>>) => server.requests.filter((r) => r.method === 'GET' && r.url.startsWith('/api/v1/nodes?') && !r.url.includes('watch=true'));
const connected = async (m: MetricsHub) => (await m.core.discoveryConnected.get()).values[0]?.value;

describe('KubernetesNodeSource against a fake API server', () => {
  it('lists, then follows add, update and delete, converting nodes as plugins see them', async () => {
    const t = await setup();
    t.server.put('nodes', k8sNode('n1', { podCIDRs: ['198.18.1.0/24', '2001:db8:1::/64'], labels: { 'topology.kubernetes.io/region': 'eu' }, created: '2026-01-02T03:04:05Z' }));
    await t.start();
    expect(t.source.synced()).toBe(true);
    expect(t.source.current().self).toEqual({
      name: 'n1',
      internalAddresses: ['192.0.2.10', '2001:db8::10'],
      externalAddresses: ['203.0.113.10'],
      podCIDRs: ['198.18.1.0/24', '2001:db8:1::/64'],
      labels: { 'topology.kubernetes.io/region': 'eu' },
      annotations: {},
      ready: true,
      location: 'eu',
      // The API server dates the node; the node cannot.
      createdAt: Date.parse('2026-01-02T03:04:05Z'),
    });
    t.server.put('nodes', k8sNode('n2', { ready: false, annotations: { 'weft.io/location': 'us' } }));
    await until('n2', () => names(t.source).includes('n2'));
    expect(t.source.current().nodes[1]).toMatchObject({ name: 'n2', ready: false, location: 'us' });
    t.server.remove('nodes', 'n2');
    await until('n2 gone', () => !names(t.source).includes('n2'));
    expect(await connected(t.metrics)).toBe(1);
    expect(t.source.current().services).toBeUndefined();
  });

  it('keeps every unchanged node the same object from view to view, and makes no view for a change weft does not see', async () => {
    const t = await setup();
    for (const n of ['n1', 'n2', 'n3']) t.server.put('nodes', k8sNode(n));
    await t.start();
    const first = t.source.current();
    // A new annotation on n2: a new view in which n1 and n3 are the very same objects.
    t.server.put('nodes', k8sNode('n2', { annotations: { 'example.com/x': '1' } }));
    await until('n2 annotated', () => t.source.current().nodes[1]?.annotations['example.com/x'] === '1');
    const second = t.source.current();
    expect(second.nodes[0]).toBe(first.nodes[0]);
    expect(second.nodes[2]).toBe(first.nodes[2]);
    expect(second.self).toBe(first.self);
    expect(second.nodes[1]).not.toBe(first.nodes[1]);
    // n3 written again as it was (a new resourceVersion, what a status update that weft ignores looks like).
    const views = t.changes.length;
    t.server.put('nodes', k8sNode('n3'));
    t.server.put('nodes', k8sNode('n2', { annotations: { 'example.com/x': '2' } }));
    await until('n2 changed again', () => t.source.current().nodes[1]?.annotations['example.com/x'] === '2');
    expect(t.source.current().nodes[2]).toBe(first.nodes[2]);
    t.server.put('nodes', k8sNode('n3'));
    await new Promise((r) => setTimeout(r, 200));
    expect(t.changes.length).toBe(views + 1);
  });

  it('keeps of the other nodes only the annotations and labels some plugin reads: a change to the rest is counted and dropped', async () => {
    const t = await setup();
    const unread = { annotations: { 'example.com/counter': '0', 'weft.io/wireguard-key': 'k1' }, labels: { 'example.com/pool': 'a', 'topology.kubernetes.io/region': 'eu' } };
    for (const n of ['n1', 'n2']) t.server.put('nodes', k8sNode(n, unread));
    await t.start({ annotations: ['weft.io/wireguard-*'], labels: [] });
    // The own node keeps everything (what the publisher compares with); n2 what is read, and its location.
    expect(t.source.current().self).toMatchObject(unread);
    expect(t.source.current().nodes[1]).toMatchObject({ annotations: { 'weft.io/wireguard-key': 'k1' }, labels: {}, location: 'eu' });
    const views = t.changes.length;
    const events = async () => (await t.metrics.core.discoveryEvents.get()).values.find((v) => v.labels.type === 'update')?.value ?? 0;
    const before = await events();
    for (let i = 1; i <= 5; i++) t.server.put('nodes', k8sNode('n2', { ...unread, annotations: { ...unread.annotations, 'example.com/counter': String(i) }, labels: { ...unread.labels, 'example.com/pool': String(i) } }));
    await until('five updates counted', async () => (await events()) === before + 5);
    await new Promise((r) => setTimeout(r, 100));
    expect(t.changes.length).toBe(views);
    // What a plugin reads still makes a view.
    t.server.put('nodes', k8sNode('n2', { ...unread, annotations: { 'weft.io/wireguard-key': 'k2' } }));
    await until('new key', () => t.source.current().nodes[1]?.annotations['weft.io/wireguard-key'] === 'k2');
    expect(t.changes.length).toBe(views + 1);
  });

  it('resumes a closed watch from its version without listing again', async () => {
    const t = await setup();
    t.server.put('nodes', k8sNode('n1'));
    await t.start();
    await until('watching', () => t.server.requests.some((r) => r.url.includes('watch=true')));
    t.server.endWatches();
    t.server.put('nodes', k8sNode('n3'));
    await until('n3 after the watch resumed', () => names(t.source).includes('n3'));
    expect(nodeLists(t.server)).toHaveLength(1);
    const watches = t.server.requests.filter((r) => r.url.includes('watch=true'));
    expect(watches.length).toBeGreaterThanOrEqual(2);
    expect(watches.at(-1)?.url).toMatch(/resourceVersion=1\d\d/); // resumed from where it was, not from 0
  });

  it('lists again after a 410 for an expired version', async () => {
    const t = await setup();
    t.server.put('nodes', k8sNode('n1'));
    await t.start();
    t.server.put('nodes', k8sNode('n4'), { unseen: true });
    t.server.compact();
    await until('n4 through a relist', () => names(t.source).includes('n4'));
    expect(nodeLists(t.server).length).toBeGreaterThanOrEqual(2);
  });

  it('keeps the last view while the API is down, and catches up when it returns', async () => {
    const t = await setup();
    t.server.put('nodes', k8sNode('n1'));
    t.server.put('nodes', k8sNode('n2'));
    await t.start();
    const before = t.changes.length;
    await t.server.stop();
    await until('disconnected', async () => (await connected(t.metrics)) === 0);
    expect(names(t.source)).toEqual(['n1', 'n2']);
    expect(t.source.synced()).toBe(true);
    t.server.put('nodes', k8sNode('n5'));
    t.server.remove('nodes', 'n2');
    await new Promise((r) => setTimeout(r, 300));
    expect(names(t.source)).toEqual(['n1', 'n2']); // still the last view, no change pushed meanwhile
    expect(t.changes.length).toBe(before);
    await t.server.start();
    await until('caught up', () => JSON.stringify(names(t.source)) === '["n1","n5"]');
    await until('connected again', async () => (await connected(t.metrics)) === 1);
    expect(t.logs.some((l) => l.msg === 'Kubernetes watch failed; keeping the last view and retrying')).toBe(true);
  });

  it('is back within a second of the API server\'s return, whatever its backoff; says why it lost it and since when', async () => {
    const t = await setup(['nodes'], {}, { backoffInitial: '20s', backoffMax: '30s' });
    t.server.put('nodes', k8sNode('n1'));
    await t.start();
    await t.server.stop();
    await until('disconnected', async () => (await connected(t.metrics)) === 0);
    expect(t.source.health()).toEqual({ connected: false, since: expect.any(Number) as number });
    const failure = t.logs.find((l) => l.msg === 'Kubernetes watch failed; keeping the last view and retrying');
    // The cause, not just "fetch failed".
    expect(String(failure?.err)).toMatch(/ECONNREFUSED|ECONNRESET|socket|closed/);
    await new Promise((r) => setTimeout(r, 1500)); // well into a 10-20 s backoff
    t.server.put('nodes', k8sNode('n7'));
    await t.server.start();
    const back = performance.now();
    await until('caught up', () => names(t.source).includes('n7'), 5_000);
    expect(performance.now() - back).toBeLessThan(1000);
    expect(t.source.health()).toEqual({ connected: true });
  });

  it('asks a server that is down at most four times a second, however many collections it watches', async () => {
    const t = await setup(['nodes', 'services', 'endpointslices'], {}, { backoffInitial: '20s', backoffMax: '30s' });
    t.server.put('nodes', k8sNode('n1'));
    await t.start();
    const asked = vi.spyOn(KubeClient.prototype, 'reachable');
    try {
      await t.server.stop();
      await until('disconnected', async () => (await connected(t.metrics)) === 0);
      asked.mockClear();
      await new Promise((r) => setTimeout(r, 3000));
      // Three loops, each waking every 0.25-0.5 s: about 24 questions if each asked; one shared answer per 0.25 s: <= 13.
      expect(asked.mock.calls.length).toBeGreaterThanOrEqual(4);
      expect(asked.mock.calls.length).toBeLessThanOrEqual(13);
    } finally {
      asked.mockRestore();
    }
  });

  it('waits for the API at start, retrying the first list', async () => {
    const t = await setup();
    t.server.put('nodes', k8sNode('n1'));
    await t.server.stop();
    const started = t.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(t.source.synced()).toBe(false);
    await t.server.start();
    await started;
    expect(names(t.source)).toEqual(['n1']);
  });

  it('patches its own node with a JSON merge patch', async () => {
    const t = await setup();
    t.server.put('nodes', k8sNode('n1', { annotations: { keep: 'x', 'weft.io/old': '1' } }));
    await t.start();
    await t.source.publish({ 'weft.io/wireguard-public-key': 'k', 'weft.io/old': null });
    expect(t.server.objects('nodes')[0]?.metadata.annotations).toEqual({ keep: 'x', 'weft.io/wireguard-public-key': 'k' });
    expect(t.server.requests.find((r) => r.method === 'PATCH')?.contentType).toBe('application/merge-patch+json');
    await until('the view has it', () => t.source.current().self.annotations['weft.io/wireguard-public-key'] === 'k');
  });

  it('watches services and endpoint slices only when asked', async () => {
    const t = await setup(['nodes', 'services', 'endpointslices']);
    t.server.put('nodes', k8sNode('n1'));
    t.server.put('services', { metadata: { name: 'web', namespace: 'shop', annotations: { 'weft.io/vip': '203.0.113.80' } }, spec: { clusterIPs: ['10.96.0.10'], externalIPs: ['203.0.113.80'], ports: [{ port: 80, protocol: 'TCP' }] } });
    t.server.put('endpointslices', {
      metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['198.18.1.5'], conditions: { ready: true }, nodeName: 'n1', targetRef: { kind: 'Pod', name: 'web-1', namespace: 'shop' } }],
    });
    await t.start();
    expect(t.source.current().services).toEqual([
      { namespace: 'shop', name: 'web', annotations: { 'weft.io/vip': '203.0.113.80' }, clusterIPs: ['10.96.0.10'], externalIPs: ['203.0.113.80'], loadBalancerIPs: [], ports: [{ protocol: 'TCP', port: 80 }], uid: expect.any(String) as string, createdAt: expect.any(Number) as number },
    ]);
    expect(t.source.current().endpointSlices).toEqual([
      { namespace: 'shop', name: 'web-abc', serviceName: 'web', addressType: 'IPv4', endpoints: [{ addresses: ['198.18.1.5'], ready: true, nodeName: 'n1', targetPod: { namespace: 'shop', name: 'web-1' } }] },
    ]);
  });
});


describe('what weft reads of a Service and an EndpointSlice', () => {
  it("keeps a Service's UID and age, and an endpoint's serving and terminating conditions (draining)", () => {
    const svc = serviceInfo({ metadata: { namespace: 'web', name: 'front', uid: 'u-1', creationTimestamp: new Date(1_700_000_000_000) }, spec: { clusterIP: '10.96.0.10' } });
    expect(svc).toMatchObject({ namespace: 'web', name: 'front', uid: 'u-1', createdAt: 1_700_000_000_000, clusterIPs: ['10.96.0.10'] });
    const slice = endpointSliceInfo({
      addressType: 'IPv4',
      metadata: { namespace: 'web', name: 'front-abc', labels: { 'kubernetes.io/service-name': 'front' } },
      endpoints: [
        { addresses: ['198.19.1.10'], conditions: { ready: true, serving: true, terminating: false } },
        { addresses: ['198.19.2.10'], conditions: { ready: false, serving: true, terminating: true } },
        { addresses: ['198.19.3.10'] },
      ],
    });
    expect(slice.endpoints).toEqual([
      { addresses: ['198.19.1.10'], ready: true, serving: true, terminating: false },
      { addresses: ['198.19.2.10'], ready: false, serving: true, terminating: true },
      { addresses: ['198.19.3.10'], ready: true },
    ]);
  });
});
