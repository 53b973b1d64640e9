import { createServer, type Server } from 'node:http';
import { startTestAgent, type TestAgent } from '@weft/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import keepalive from './index.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const PORT = 19_472 + (process.pid % 500);

/** A stand-in for a peer's probe server, on its own loopback address. */
async function fakePeer(address: string, node: string): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/status') {
      res.end(JSON.stringify({ node, started: 'x', intervalMs: 300, planes: ['underlay'], probing: ['n1'], results: [{ target: 'n1', plane: 'underlay', up: true, result: 'ok', rttMs: 0.3, at: Date.now(), ok: 1, failed: 0 }], diagnosis: {}, summary: '1/1 probes up', converged: true }));
    } else res.end(JSON.stringify({ node, started: 'x' }));
  });
  await new Promise<void>((r) => server.listen(PORT, address, r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  return server;
}

async function start(): Promise<TestAgent> {
  await fakePeer('127.0.0.2', 'n2');
  await fakePeer('127.0.0.5', 'someone-else');
  const t = await startTestAgent({
    plugins: [{ plugin: keepalive, config: { port: PORT, listen: '127.0.0.1', interval: '300ms', timeout: '200ms', planes: ['underlay'] } }],
    nodes: [
      { name: 'n1', internalAddresses: ['127.0.0.1'] },
      { name: 'n2', internalAddresses: ['127.0.0.2'] },
      { name: 'n3', internalAddresses: ['127.0.0.3'] },
      { name: 'n4', internalAddresses: ['127.0.0.4'], ready: false },
      { name: 'n5', internalAddresses: ['127.0.0.5'] },
    ],
  });
  cleanups.push(() => t.stop());
  return t;
}

const metricsText = async (t: TestAgent) => (await t.fetch('/metrics')).text();
type Status = { results: { target: string; plane: string; up: boolean; result?: string; rttMs?: number }[]; probing: string[]; summary: string };
const status = async (t: TestAgent) => (await (await t.fetch('/api/keepalive/status')).json()) as Status;

describe('the keepalive plugin in an agent', () => {
  it('probes the Ready peers: an answer, a refusal, the wrong node; exports it all', async () => {
    const t = await start();
    await t.waitFor(async () => { const x = await status(t); return x.results.length === 3 && x.results.every((r) => r.result !== undefined); }, { what: 'a probe of every peer', timeoutMs: 5000 });
    const s = await status(t);
    expect(s.probing).toEqual(['n2', 'n3', 'n5']); // n4 is not Ready
    expect(s.results.map((r) => [r.target, r.up, r.result])).toEqual([
      ['n2', true, 'ok'],
      ['n3', false, 'refused'],
      ['n5', false, 'wrong-node'],
    ]);
    expect(s.results[0]?.rttMs).toBeGreaterThan(0);
    const m = await metricsText(t);
    expect(m).toContain('weft_probe_up{target="n2",plane="underlay",plugin="keepalive"} 1');
    expect(m).toContain('weft_probe_up{target="n3",plane="underlay",plugin="keepalive"} 0');
    expect(m).toMatch(/weft_probe_total\{target="n3",plane="underlay",result="refused",plugin="keepalive"\} [1-9]/);
    const buckets = m.split('\n').filter((l) => l.startsWith('weft_probe_duration_seconds_bucket{') && l.includes('target="n2"'));
    expect(buckets.map((l) => /le="([^"]+)"/.exec(l)?.[1])).toEqual(['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
    expect(Number(buckets.at(-1)?.split(' ').at(-1))).toBeGreaterThan(0);
    expect(m).toContain('weft_probe_peers{plugin="keepalive"} 3');
  });

  it("removes a departed peer's series", async () => {
    const t = await start();
    await t.waitFor(async () => (await metricsText(t)).includes('target="n3"'), { what: 'n3 probed' });
    t.cluster.removeNode('n3');
    await t.waitFor(async () => !(await metricsText(t)).includes('target="n3"'), { what: 'n3 series gone' });
    expect((await status(t)).probing).toEqual(['n2', 'n5']);
  });

  it('the matrix: every node that answers, and the ones that do not; health 503 names the failing pairs', async () => {
    const t = await start();
    await t.waitFor(async () => { const x = await status(t); return x.results.length === 3 && x.results.every((r) => r.result !== undefined); }, { what: 'probes' });
    const m = (await (await t.fetch('/api/keepalive/matrix')).json()) as { nodes: string[]; missing: { node: string }[]; cells: { source: string; target: string; up: boolean }[] };
    expect(m.nodes).toEqual(['n1', 'n2', 'n3', 'n4', 'n5']);
    expect(m.missing).toEqual([
      { node: 'n3', error: expect.stringContaining('ECONNREFUSED') as string },
      { node: 'n4', error: expect.stringContaining('ECONNREFUSED') as string },
      { node: 'n5', error: 'its probe server answered as "someone-else"' },
    ]);
    expect(m.cells.filter((c) => c.source === 'n2')).toEqual([expect.objectContaining({ source: 'n2', target: 'n1', up: true })]);
    const health = await t.fetch('/api/keepalive/health');
    expect(health.status).toBe(503);
    const body = (await health.json()) as { failing: { source: string; target: string; plane: string; result: string }[] };
    expect(body.failing).toEqual([
      { source: 'n1', target: 'n3', plane: 'underlay', result: 'refused' },
      { source: 'n1', target: 'n5', plane: 'underlay', result: 'wrong-node' },
    ]);
  });

  it('serves its page, which needs nothing from outside', async () => {
    const t = await start();
    const res = await t.fetch('/api/keepalive/');
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await res.text();
    expect(html).toContain('<title>weft keepalive</title>');
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|@import|url\(/);
    expect(html.match(/https?:\/\/[^'"\s]+/g)).toEqual(['http://www.w3.org/2000/svg']); // an XML namespace name, never fetched
  });

  it("does not probe the underlay of a peer in another location (unless asked to)", async () => {
    const t = await startTestAgent({
      plugins: [{ plugin: keepalive, config: { port: PORT, listen: '127.0.0.1', interval: '300ms', timeout: '200ms', planes: ['underlay'] } }],
      nodes: [
        { name: 'n1', internalAddresses: ['127.0.0.1'], labels: { 'topology.kubernetes.io/region': 'here' } },
        { name: 'n9', internalAddresses: ['127.0.0.9'], labels: { 'topology.kubernetes.io/region': 'far' } },
      ],
    });
    cleanups.push(() => t.stop());
    await t.waitFor(async () => (await status(t)).results.length === 1, { what: 'the target' });
    const s = (await status(t)) as Status & { converged: boolean; row: Record<string, Record<string, string>> };
    expect(s.results[0]).toMatchObject({ target: 'n9', plane: 'underlay', up: false, missing: 'in another location (far): the underlay across locations is not probed' });
    expect([s.summary, s.converged, s.row]).toEqual(['0/0 probes up', true, { underlay: { n9: '-' } }]);
  });

  it('refuses a bad section with the key and what is wrong', async () => {
    await expect(startTestAgent({ plugins: [{ plugin: keepalive, config: { planes: ['tunnel'] } }] })).rejects.toThrow('plugins.keepalive.planes[0]: expected one of underlay, overlay, pod, got "tunnel"');
    await expect(startTestAgent({ plugins: [{ plugin: keepalive, config: { interval: '1s', timeout: '2s' } }] })).rejects.toThrow('plugins.keepalive.timeout: timeout must be shorter than interval');
    await expect(startTestAgent({ plugins: [{ plugin: keepalive, config: { maxPeers: 4, minProbers: 3 } }] })).rejects.toThrow('plugins.keepalive.maxPeers: maxPeers must be at least twice minProbers');
  });
});

describe('the overlay plane and the plugin that provides an overlay', () => {
  it('without a provider: every overlay probe says why it has no address, and the setup log says so once', async () => {
    const t = await startTestAgent({
      plugins: [{ plugin: keepalive, config: { port: PORT, listen: '127.0.0.1', interval: '300ms', timeout: '200ms', planes: ['overlay'] } }],
      nodes: [
        { name: 'n1', internalAddresses: ['127.0.0.1'] },
        { name: 'n2', internalAddresses: ['127.0.0.2'] },
      ],
    });
    cleanups.push(() => t.stop());
    await t.waitForReconcile('keepalive');
    const s = (await (await t.fetch('/api/keepalive/status')).json()) as { results: { target: string; plane: string; up: boolean; missing?: string }[] };
    expect(s.results).toMatchObject([{ target: 'n2', plane: 'overlay', up: false, missing: 'no overlay: no enabled plugin provides one (the wireguard plugin does)' }]);
    expect(t.logs.filter((l) => l.level === 40 && String(l.msg).startsWith('the overlay plane is configured, and no enabled plugin provides an overlay'))).toHaveLength(1);
  });
});
