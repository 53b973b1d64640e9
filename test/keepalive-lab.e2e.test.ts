/// <reference lib="dom" />
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Lab } from '../core/src/lab/index.js';
import { findProgram } from '../tools/programs.mjs';
import { netnsSkipReason, programsSkipReason, skipNote } from './support/capabilities.js';
import { parseExposition } from './support/prometheus.js';
import './support/builtins.js';
import { until } from './support/until.js';

// Keepalive probing in the lab: all green, a cut pair fails on every plane and only that pair, health names it,
// heal turns it green; the metrics are valid exposition; the page in a real headless browser marks the cut pair.
const repo = fileURLToPath(new URL('../', import.meta.url));
if (!existsSync(join(repo, 'core/dist/cli/main.js'))) throw new Error('core/dist is missing: run npm run build (npm test does) first');
const skip = await netnsSkipReason();
// Only asked when the suite runs: a machine without root need not hear about the browser too.
const noBrowser = skip ? undefined : programsSkipReason(['browser'], 'the keepalive page test in headless Chromium');

const name = `ka${String(process.pid % 100000)}`;
let lab: Lab | undefined;
let proxy: Server | undefined;
afterAll(async () => {
  await new Promise<void>((r) => (proxy ? proxy.close(() => r()) : r()));
  await Lab.down(name);
});

/** GET through a lab agent's Unix socket. */
function api(node: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join((lab as Lab).dir, node, 'http.sock'), path, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
type Health = { healthy: boolean; failing: { source: string; target: string; plane: string }[]; missing: { node: string }[] };
const healthOf = async (node = 'n3') => {
  const r = await api(node, '/api/keepalive/health');
  return { status: r.status, ...(JSON.parse(r.body) as Health) };
};

describe.skipIf(skip)(`keepalive in the lab${skipNote(skip)}`, () => {
  const INTERVAL_MS = 2000; // the lab's probe interval

  it('3 nodes probe each other on the underlay, the overlay and the pod plane: all green', async () => {
    const up = await Lab.up({ name, nodes: 3, timeoutMs: 60_000 });
    lab = up;
    await until('health 200', async () => (await healthOf()).status === 200, 30_000);
    // n3's health is n3's view; every node's own results turn green within a few probe intervals of the mesh's
    // handshakes (three agents starting at once: a pair's first WireGuard handshake can take a retry).
    const results = (st: Awaited<ReturnType<typeof up.status>>) => st.nodes.flatMap((n) => (n.plugins.keepalive as unknown as { results: { up: boolean }[] }).results);
    await until('every node probes every other on every plane, all up', async () => {
      const all = results(await up.status());
      return all.length === 18 && all.every((r) => r.up);
    }, 30_000);
    const s = await up.status();
    for (const n of s.nodes) {
      const ka = n.plugins.keepalive as unknown as { results: { target: string; plane: string; up: boolean }[] };
      expect(ka.results.map((r) => `${r.target} ${r.plane} ${String(r.up)}`).sort()).toEqual(
        s.nodes.filter((o) => o !== n).flatMap((o) => ['overlay', 'pod', 'underlay'].map((p) => `${o.name} ${p} true`)).sort(),
      );
    }
  });

  it("the metrics are valid Prometheus exposition, with every target's series", async () => {
    const m = await api('n1', '/metrics');
    const samples = parseExposition(m.body);
    const up = samples.filter((x) => x.name === 'weft_probe_up');
    expect(up.map((x) => `${x.labels.target ?? ''} ${x.labels.plane ?? ''} ${String(x.value)}`).sort()).toEqual(['n2 overlay 1', 'n2 pod 1', 'n2 underlay 1', 'n3 overlay 1', 'n3 pod 1', 'n3 underlay 1']);
    expect(samples.some((x) => x.name === 'weft_probe_duration_seconds_bucket' && x.labels.le === '0.001')).toBe(true);
    expect(samples.filter((x) => x.name === 'weft_probe_udp_packets_sent_total').length).toBe(6);
  });

  it('cut n1 from n2: that pair fails on the affected planes within two intervals, health names it, the others stay green', async () => {
    const l = lab as Lab;
    const cutAt = Date.now();
    await l.cut('n1', 'n2');
    await until('the cut pair failing', async () => {
      const h = await healthOf();
      const pairs = new Set(h.failing.map((f) => `${f.source}>${f.target} ${f.plane}`));
      return ['n1>n2', 'n2>n1'].every((p) => ['underlay', 'overlay', 'pod'].every((plane) => pairs.has(`${p} ${plane}`)));
    }, 15_000);
    const took = Date.now() - cutAt;
    // Two intervals (with their jitter) and the probe timeout.
    expect(took).toBeLessThan(2 * INTERVAL_MS * 1.1 + 1000 + 500);
    const h = await healthOf();
    expect(h.status).toBe(503);
    expect(h.healthy).toBe(false);
    expect(new Set(h.failing.map((f) => [f.source, f.target].sort().join('-')))).toEqual(new Set(['n1-n2']));
    expect(h.missing).toEqual([]);
    const status = JSON.parse((await api('n1', '/api/keepalive/status')).body) as { diagnosis: Record<string, string> };
    expect(status.diagnosis.n2).toBe('unreachable: the node does not answer on any plane — is it down, or cut off?');
    // The UDP probe counts the cut pair's datagrams as lost, and only theirs.
    const lost = (m: string, target: string) => parseExposition(m).filter((x) => x.name === 'weft_probe_udp_packets_lost_total' && x.labels.target === target).reduce((a, x) => a + x.value, 0);
    const before = (await api('n1', '/metrics')).body;
    await until('UDP loss towards n2 (two rounds of 10 datagrams)', async () => lost((await api('n1', '/metrics')).body, 'n2') >= lost(before, 'n2') + 20, 15_000);
    // Towards n3, nothing beyond a stray datagram on a busy machine.
    expect(lost((await api('n1', '/metrics')).body, 'n3') - lost(before, 'n3')).toBeLessThanOrEqual(2);
  });

  it.skipIf(noBrowser)(`the page, in headless Chromium, shows every node and marks the cut pair${skipNote(noBrowser)}`, async () => {
    // The browser runs on the machine; the agent's API is inside n3's namespace: a small TCP proxy to its socket.
    proxy = createServer((c) => {
      const s = connect(join((lab as Lab).dir, 'n3', 'http.sock'));
      c.pipe(s).pipe(c);
      s.on('error', () => c.destroy());
      c.on('error', () => s.destroy());
    });
    await new Promise<void>((r) => proxy?.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as { port: number }).port;
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: findProgram('chromium'), args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const external: string[] = [];
      page.on('request', (req) => {
        if (!req.url().startsWith(`http://127.0.0.1:${String(port)}/`)) external.push(req.url());
      });
      await page.goto(`http://127.0.0.1:${String(port)}/api/keepalive/`);
      await page.waitForFunction(() => document.querySelectorAll('td.fail').length >= 6, undefined, { timeout: 20_000 });
      expect(await page.textContent('#state')).toMatch(/^6 failing pair\(s\)$/);
      for (const plane of ['underlay', 'overlay', 'pod']) {
        const headers = await page.$$eval(`[data-plane="${plane}"] tr:first-child th`, (ths) => ths.map((t) => t.textContent));
        expect(headers).toEqual(['from \\ to', 'n1', 'n2', 'n3']);
        const failing = await page.$$eval(`[data-plane="${plane}"] td.fail`, (tds) => tds.map((t) => t.getAttribute('data-pair')).sort());
        expect(failing).toEqual(['n1>n2', 'n2>n1']);
      }
      expect(await page.$$eval('line.edge.failing', (ls) => ls.map((l) => l.getAttribute('data-edge')))).toEqual(['n1|n2']);
      expect(await page.$$eval('line.edge.up', (ls) => ls.map((l) => l.getAttribute('data-edge')).sort())).toEqual(['n1|n3', 'n2|n3']);
      expect(await page.$$eval('circle', (cs) => cs.length)).toBe(3);
      expect(external).toEqual([]);
      await mkdir(join(repo, 'test-results'), { recursive: true });
      await page.screenshot({ path: join(repo, 'test-results', 'keepalive-page.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  });

  it('heal: the pair turns green again', async () => {
    await (lab as Lab).heal('n1', 'n2');
    await until('health 200 again', async () => (await healthOf()).status === 200, 20_000);
    await (lab as Lab).down();
  });
});
