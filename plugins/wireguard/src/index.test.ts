import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { generateWireGuardKeyPair } from '@weft/core';
import { MemoryKernel, type NodeInit, startTestAgent, type TestAgent } from '@weft/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import wireguard from './index.js';
import { PUBLISHED } from './facts.js';

const cleanups: TestAgent[] = [];
afterEach(async () => {
  for (const t of cleanups.splice(0)) await t.stop();
});

const n2 = generateWireGuardKeyPair();
const laptop = generateWireGuardKeyPair();
const peerNode = (name: string, i: number, key: string, extra: Record<string, string> = {}) => ({
  name,
  internalAddresses: [`192.0.2.${String(i)}`],
  podCIDRs: [`198.18.${String(i)}.0/24`],
  annotations: {
    [PUBLISHED.publicKey]: key,
    [PUBLISHED.endpoint]: `192.0.2.${String(i)}:51820`,
    [PUBLISHED.overlay]: `100.64.0.${String(i)},fd77:6566:7400::${String(i)}`,
    [PUBLISHED.overlaySince]: '1000',
    ...extra,
  },
});
const self = { name: 'n1', internalAddresses: ['192.0.2.1'], podCIDRs: ['198.18.1.0/24'] };

async function start(options: { kernel?: MemoryKernel; stateDir?: string; config?: Record<string, unknown>; nodes?: NodeInit[] } = {}) {
  const kernel = options.kernel ?? new MemoryKernel();
  if (!options.kernel) kernel.addForeign({ links: [{ kind: 'dummy', name: 'eth0', mtu: 1450 }], addresses: [{ dev: 'eth0', address: '192.0.2.1/24' }] });
  const t = await startTestAgent({
    plugins: [{ plugin: wireguard, config: { granularity: 'full', heartbeat: '1s', peers: [{ name: 'laptop', publicKey: laptop.publicKey, allowedIPs: ['198.51.100.7/32'] }], ...options.config } }],
    nodes: options.nodes ?? [self, peerNode('n2', 2, n2.publicKey)],
    kernel,
    ...(options.stateDir ? { stateDir: options.stateDir } : {}),
  });
  cleanups.push(t);
  await t.waitForReconcile('wireguard');
  return t;
}

const metricsText = async (t: TestAgent) => (await t.fetch('/metrics')).text();

describe('the wireguard plugin in an agent', () => {
  it('makes its key (0600), publishes who it is, and configures the interface, peers and routes', async () => {
    const t = await start();
    const keyFile = join(t.stateDir, 'plugins', 'wireguard', 'private.key');
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    await t.waitFor(() => t.cluster.current().self.annotations[PUBLISHED.endpoint] !== undefined, { what: 'the publish' });
    const own = t.cluster.current().self.annotations;
    expect(own[PUBLISHED.endpoint]).toBe('192.0.2.1:51820');
    expect(own[PUBLISHED.overlay]).toMatch(/^100\.\d+\.\d+\.\d+,fd77:6566:7400::[0-9a-f:]+$/);
    const status = (await (await t.fetch('/api/wireguard/status')).json()) as { publicKey: string; peers: { name: string; endpoint: string; allowedIPs: string[] }[]; converged: boolean; summary: string };
    expect(own[PUBLISHED.publicKey]).toBe(status.publicKey);
    expect(status.converged).toBe(true);
    expect(status.summary).toBe('2 peers, 0 with a fresh handshake');
    expect(status.peers.map((p) => [p.name, p.endpoint, p.allowedIPs])).toEqual([
      ['laptop', null, ['198.51.100.7/32']],
      ['n2', '192.0.2.2:51820', ['100.64.0.2/32', '198.18.2.0/24', 'fd77:6566:7400::2/128']],
    ]);
    const k = t.kernel.snapshot();
    expect(k.links.find((l) => l.name === 'weft-wg0')).toMatchObject({ kind: 'wireguard', mtu: 1370 }); // eth0's 1450 - 80
    expect(k.wireguard.get('weft-wg0')?.peers.map((p) => p.publicKey).sort()).toEqual([n2.publicKey, laptop.publicKey].sort());
    expect(k.routes.filter((r) => r.proto === 110).map((r) => r.dst).sort()).toEqual(['100.64.0.2/32', '198.18.2.0/24', '198.51.100.7/32', 'fd77:6566:7400::2/128']);
    expect(k.sysctls.get('net.ipv4.ip_forward')).toBe('1');
  });

  it("reads the underlay's MTU at start, not on every heartbeat; a change of its own address reads it again", async () => {
    const kernel = new MemoryKernel();
    kernel.addForeign({ links: [{ kind: 'dummy', name: 'eth0', mtu: 1450 }], addresses: [{ dev: 'eth0', address: '192.0.2.1/24' }] });
    let reads = 0;
    const interfaces = kernel.interfaces.bind(kernel);
    kernel.interfaces = () => ((reads += 1), interfaces());
    const t = await start({ kernel });
    await t.waitForReconcile('wireguard', { runs: 3, timeoutMs: 10_000 }); // heartbeats (1 s)
    expect(reads).toBe(1);
    t.cluster.setNode({ ...self, internalAddresses: ['192.0.2.9'] });
    await t.waitFor(() => reads === 2, { what: 'the MTU read again' });
  });

  it('never shows its private key: not in logs, metrics, status, graph or errors', async () => {
    const t = await start();
    const secret = t.kernel.snapshot().wireguard.get('weft-wg0')?.privateKey as string;
    expect(secret).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    const texts = [
      JSON.stringify(t.logs),
      await metricsText(t),
      await (await t.fetch('/api/wireguard/status')).text(),
      await (await t.fetch('/api/wireguard/graph')).text(),
      await (await t.fetch('/api/wireguard/peer-config?name=laptop')).text(),
      JSON.stringify(t.cluster.current().self.annotations),
    ];
    for (const text of texts) expect(text).not.toContain(secret);
  });

  it('serves the graph and a wg-quick config for an external peer', async () => {
    const t = await start();
    const dot = await t.fetch('/api/wireguard/graph');
    expect(dot.headers.get('content-type')).toBe('text/vnd.graphviz; charset=utf-8');
    const text = await dot.text();
    expect(text).toMatch(/^graph weft \{/);
    expect(text).toContain('"n1" -- "n2" [label="never"];');
    expect(text).toContain('"n1" -- "external:laptop" [label="never"];');
    const conf = await (await t.fetch('/api/wireguard/peer-config?name=laptop')).text();
    expect(conf).toContain('[Interface]\n# PrivateKey = <the private key whose public key is in the weft config>\nAddress = 198.51.100.7/32');
    expect(conf).toContain(`[Peer]\n# n2\nPublicKey = ${n2.publicKey}\nEndpoint = 192.0.2.2:51820\nAllowedIPs = 100.64.0.2/32, 198.18.2.0/24, fd77:6566:7400::2/128`);
    const missing = await t.fetch('/api/wireguard/peer-config?name=nope');
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'no external peer "nope"; configured: laptop' });
  });

  it('exports its metrics; a bad peer is left out with a log line and a metric, the others unaffected', async () => {
    const t = await start();
    t.cluster.setNode(peerNode('n3', 3, 'garbage'));
    await t.waitFor(() => t.logs.some((l) => l.msg === 'peer left out of the mesh: invalid data' && l.peer === 'n3'), { what: 'the log line' });
    const m = await metricsText(t);
    expect(m).toContain('weft_wireguard_peer_invalid{peer="n3",plugin="wireguard"} 1');
    expect(m).toContain('weft_wireguard_peers{plugin="wireguard"} 2');
    expect(m).toContain('weft_wireguard_leader{plugin="wireguard"} 0');
    expect(m).toMatch(/weft_wireguard_peer_last_handshake_seconds\{peer="n2",plugin="wireguard"\} 0/);
    expect(m).toContain('weft_wireguard_peer_receive_bytes_total{peer="n2",plugin="wireguard"} 0');
    expect(m).toContain('weft_wireguard_peer_transmit_bytes_total{peer="n2",plugin="wireguard"} 0');
    expect(t.kernel.snapshot().wireguard.get('weft-wg0')?.peers.some((p) => p.publicKey === n2.publicKey)).toBe(true);
    // Handshakes and traffic, as the device reports them.
    t.kernel.setPeerStatus('weft-wg0', n2.publicKey, { latestHandshake: Math.floor(Date.now() / 1000), receiveBytes: 500, transmitBytes: 700 });
    await t.waitFor(async () => (await metricsText(t)).includes('weft_wireguard_peer_receive_bytes_total{peer="n2",plugin="wireguard"} 500'), { what: 'byte counters', timeoutMs: 5000 });
    expect(await metricsText(t)).toContain('weft_wireguard_peer_transmit_bytes_total{peer="n2",plugin="wireguard"} 700');
  });

  it('a node that leaves is removed at once; a peer deleted by hand comes back at the next heartbeat', async () => {
    const t = await start();
    t.kernel.drift((s) => {
      const dev = s.wireguard.get('weft-wg0');
      if (dev) s.wireguard.set('weft-wg0', { ...dev, peers: dev.peers.filter((p) => p.publicKey !== n2.publicKey) });
      s.routes.splice(s.routes.findIndex((r) => r.dst === '198.18.2.0/24'), 1);
    });
    await t.waitFor(() => (t.kernel.snapshot().wireguard.get('weft-wg0')?.peers ?? []).some((p) => p.publicKey === n2.publicKey), { what: 'the peer back', timeoutMs: 5000 });
    expect(t.kernel.snapshot().routes.some((r) => r.dst === '198.18.2.0/24')).toBe(true);
    t.cluster.removeNode('n2');
    await t.waitFor(() => !(t.kernel.snapshot().wireguard.get('weft-wg0')?.peers ?? []).some((p) => p.publicKey === n2.publicKey), { what: 'n2 gone' });
    expect(t.kernel.snapshot().routes.some((r) => r.dst === '198.18.2.0/24')).toBe(false);
    expect(await metricsText(t)).not.toContain('peer="n2"');
  });

  it('a joined peer with no handshake soon after its poke is reset once (out of the device and back); one handshaken is not', async () => {
    const deletes = async (t: TestAgent) => Number(/^weft_kernel_changes_total\{owner="wireguard",kind="wgpeer",op="delete"\} (\d+)$/m.exec(await metricsText(t))?.[1] ?? 0);
    const t = await start();
    expect(await deletes(t)).toBe(0);
    await t.waitFor(async () => (await deletes(t)) === 1, { what: 'n2 reset', timeoutMs: 5000 });
    expect((t.kernel.snapshot().wireguard.get('weft-wg0')?.peers ?? []).map((p) => p.publicKey)).toContain(n2.publicKey);
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await deletes(t)).toBe(1);

    // A node that joins later and handshakes at once is left alone.
    const n3 = generateWireGuardKeyPair();
    t.cluster.setNode(peerNode('n3', 3, n3.publicKey));
    await t.waitFor(() => (t.kernel.snapshot().wireguard.get('weft-wg0')?.peers ?? []).some((p) => p.publicKey === n3.publicKey), { what: 'n3 added' });
    t.kernel.setPeerStatus('weft-wg0', n3.publicKey, { latestHandshake: Math.floor(Date.now() / 1000) });
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await deletes(t)).toBe(1);
  }, 15_000);

  it('a restart keeps the key and the overlay address, and changes nothing in the kernel', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'weft-wg-'));
    try {
      const kernel = new MemoryKernel();
      kernel.addForeign({ links: [{ kind: 'dummy', name: 'eth0' }], addresses: [{ dev: 'eth0', address: '192.0.2.1/24' }] });
      const first = await start({ kernel, stateDir: dir });
      await first.waitFor(() => first.cluster.current().self.annotations[PUBLISHED.overlay] !== undefined, { what: 'the publish' });
      const before = first.cluster.current().self.annotations;
      await first.stop();
      cleanups.splice(cleanups.indexOf(first), 1);
      const writes = kernel.log.length;
      const second = await start({ kernel, stateDir: dir });
      await second.waitFor(() => second.cluster.current().self.annotations[PUBLISHED.overlay] !== undefined, { what: 'the publish' });
      const after = second.cluster.current().self.annotations;
      expect(after[PUBLISHED.publicKey]).toBe(before[PUBLISHED.publicKey]);
      expect(after[PUBLISHED.overlay]).toBe(before[PUBLISHED.overlay]);
      expect(kernel.log.length).toBe(writes);
      expect(second.logs.some((l) => l.msg === 'WireGuard key loaded')).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each(['full', 'location'])('granularity %s: no heartbeat, nothing periodic — one left from an older version is removed, and nothing is written after', async (granularity) => {
    const t = await start({
      config: { granularity, heartbeat: '1s' },
      nodes: [{ ...self, annotations: { [PUBLISHED.lastSeen]: '1234' } }, peerNode('n2', 2, n2.publicKey, granularity === 'location' ? { 'weft.io/location': 'b' } : {})],
    });
    await t.waitFor(() => t.cluster.current().self.annotations[PUBLISHED.lastSeen] === undefined, { what: 'the old heartbeat removed' });
    const published = JSON.stringify(t.cluster.current().self.annotations);
    await t.waitForReconcile('wireguard', { runs: 3 }); // heartbeats: the device re-read, nothing published
    expect(JSON.stringify(t.cluster.current().self.annotations)).toBe(published);
    expect(t.cluster.current().self.annotations[PUBLISHED.publicKey]).toBeDefined();
  });

  it('refuses a bad section with the key and what is wrong', async () => {
    await expect(start({ config: { granularity: 'mesh' } })).rejects.toThrow(/plugins\.wireguard\.granularity: expected full or location, got "mesh"/);
    await expect(start({ config: { interface: 'wg0' } })).rejects.toThrow(/plugins\.wireguard\.interface: expected "weft-wg" and up to 8 lowercase letters or digits, got "wg0"/);
    await expect(start({ config: { peers: [{ name: 'x', publicKey: 'nope', allowedIPs: [] }] } })).rejects.toThrow('plugins.wireguard.peers[0].publicKey: expected a base64 WireGuard public key (44 characters), got "nope"');
  });
});
