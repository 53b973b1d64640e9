import { afterEach, describe, expect, it } from 'vitest';
import { type FakeApiServer, mergePatch, startFakeApiServer } from '../core/src/testing/fake-apiserver.js';
import { until } from './support/until.js';

// The fake API server against the real client library (the wire contract: list and watch URLs, resourceVersion resume,
// 410 relist, merge-patch content type, bearer token): so that the discovery source's tests fail the way they would
// against a real API server.
const k8s = await import('@kubernetes/client-node');

let server: FakeApiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function client(url: string, token = 'fake-token') {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: url, skipTLSVerify: true }],
    users: [{ name: 'weft', token }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'weft' }],
    currentContext: 'fake',
  });
  return { kc, core: kc.makeApiClient(k8s.CoreV1Api) };
}

const node = (name: string, extra: object = {}) => ({ metadata: { name, annotations: {} }, status: { addresses: [{ type: 'InternalIP', address: '192.0.2.1' }] }, ...extra });


describe('fake API server, with @kubernetes/client-node on the other side', () => {
  it('lists, then streams add, update and delete to an informer', async () => {
    server = await startFakeApiServer();
    server.put('nodes', node('n1'));
    const { kc, core } = client(server.url);
    const informer = k8s.makeInformer(kc, '/api/v1/nodes', () => core.listNode());
    const events: string[] = [];
    for (const e of ['add', 'update', 'delete'] as const) informer.on(e, (o: { metadata?: { name?: string } }) => events.push(`${e} ${o.metadata?.name ?? ''}`));
    await informer.start();
    server.put('nodes', node('n2'));
    server.put('nodes', node('n1', { spec: { podCIDRs: ['198.18.1.0/24'] } }));
    server.remove('nodes', 'n2');
    await until('all events', () => events.length === 4);
    expect(events).toEqual(['add n1', 'add n2', 'update n1', 'delete n2']);
    await informer.stop();
    expect(server.requests[0]?.url).toBe('/api/v1/nodes');
    expect(server.requests[1]?.url).toMatch(/^\/api\/v1\/nodes\?watch=true&resourceVersion=101/);
  });

  it('answers a watch from a compacted version with 410, and the informer relists', async () => {
    server = await startFakeApiServer();
    server.put('nodes', node('n1'));
    const { kc, core } = client(server.url);
    const informer = k8s.makeInformer(kc, '/api/v1/nodes', () => core.listNode());
    await informer.start();
    const lists = () => server?.requests.filter((r) => r.url.startsWith('/api/v1/nodes') && !r.url.includes('watch=true')).length ?? 0;
    expect(lists()).toBe(1);
    // n2 arrives while the watch stream stalls; then history is compacted and the stream ends. The informer
    // re-watches from its last version, gets 410 Expired, lists again, and so learns of n2.
    server.put('nodes', node('n2'), { unseen: true });
    server.compact();
    await until('n2 through a relist', () => informer.list().some((n) => n.metadata?.name === 'n2'), 10_000);
    expect(lists()).toBe(2);
    expect(server.requests.some((r) => r.url.includes('resourceVersion=101'))).toBe(true);
    await informer.stop();
  });

  it('accepts a node patch only as a JSON merge patch, and applies RFC 7386', async () => {
    server = await startFakeApiServer();
    server.put('nodes', node('n1', { metadata: { name: 'n1', annotations: { 'weft.io/a': '1', keep: 'x' } } }));
    const { core } = client(server.url);
    await expect(core.patchNode({ name: 'n1', body: { metadata: { annotations: { 'weft.io/a': null } } } })).rejects.toThrow(/HTTP-Code: 415/);
    await core.patchNode({ name: 'n1', body: { metadata: { annotations: { 'weft.io/a': null, 'weft.io/b': '2' } } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    expect(server.objects('nodes')[0]?.metadata.annotations).toEqual({ keep: 'x', 'weft.io/b': '2' });
    expect(mergePatch({ a: { b: 1, c: [1] } }, { a: { b: null, c: [2] }, d: 1 })).toEqual({ a: { c: [2] }, d: 1 });
  });

  it('refuses a request without the bearer token, as a real server does', async () => {
    server = await startFakeApiServer();
    await expect(client(server.url, 'stolen').core.listNode()).rejects.toThrow(/HTTP-Code: 401/);
  });

  it('refuses connections while stopped and serves the same state again after start', async () => {
    server = await startFakeApiServer();
    server.put('nodes', node('n1'));
    const { core } = client(server.url);
    await server.stop();
    await expect(core.listNode()).rejects.toThrow();
    server.put('nodes', node('n2'));
    await server.start();
    expect((await core.listNode()).items.map((n) => n.metadata?.name).sort()).toEqual(['n1', 'n2']);
  });
});
