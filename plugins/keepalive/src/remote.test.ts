import { createServer } from 'node:http';
import { createSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { cached, fetchStatus, mapBounded, parseRemoteStatus } from './remote.js';

const MAX_STATUS_BYTES = 1 << 20;
import { ProbeServer, UDP_MAGIC, unmapped } from './server.js';
import { clusterAddresses } from './targets.js';

const node = (name: string, extra: Partial<{ internalAddresses: string[]; podCIDRs: string[]; annotations: Record<string, string> }> = {}) => ({
  name,
  internalAddresses: [],
  externalAddresses: [],
  podCIDRs: [],
  labels: {},
  annotations: {},
  ready: true,
  location: undefined,
  createdAt: 0,
  ...extra,
});

describe("a peer's status, as the matrix reads it", () => {
  it.each([
    ['not JSON', '{', /not JSON/],
    ['results not a list', '{"node":"n2","results":{},"diagnosis":{}}', /malformed at results/],
    ['a result on an unknown plane', '{"node":"n2","results":[{"target":"n1","plane":"moon","up":true,"ok":1,"failed":0}],"diagnosis":{}}', /malformed at results\.0\.plane/],
    ['a negative count', '{"node":"n2","results":[{"target":"n1","plane":"underlay","up":true,"ok":-1,"failed":0}],"diagnosis":{}}', /results\.0\.ok/],
    ['a huge diagnosis', JSON.stringify({ node: 'n2', results: [], diagnosis: { n1: 'x'.repeat(501) } }), /diagnosis\.n1/],
    ['a node name too long', JSON.stringify({ node: 'n'.repeat(254), results: [], diagnosis: {} }), /at node/],
  ])('%s is refused with where', (_what, body, error) => {
    const r = parseRemoteStatus(body);
    expect('error' in r ? r.error : '').toMatch(error);
  });

  it('a good one passes, extra fields ignored', () => {
    const r = parseRemoteStatus(JSON.stringify({ node: 'n2', results: [{ target: 'n1', plane: 'underlay', up: true, ok: 3, failed: 0, rttMs: 0.2, at: 1 }], diagnosis: {}, row: 'whatever' }));
    expect(r).toMatchObject({ node: 'n2', results: [{ target: 'n1', up: true }] });
  });

  it(`a status over ${String(MAX_STATUS_BYTES)} bytes is not read to its end`, async () => {
    let sent = 0;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (sent < 64 * MAX_STATUS_BYTES && res.write(chunk)) sent += chunk.length;
        if (sent < 64 * MAX_STATUS_BYTES) res.once('drain', pump);
        else res.end();
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const r = await fetchStatus('127.0.0.1', (server.address() as AddressInfo).port, 5_000, MAX_STATUS_BYTES);
      expect(r).toEqual({ error: `its probe server's status is over ${String(MAX_STATUS_BYTES)} bytes (matrix.maxStatusBytes)` });
      expect(sent).toBeLessThan(16 * MAX_STATUS_BYTES);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});

describe('bounded fan-out', () => {
  it('mapBounded runs at most the limit at once, results in order', async () => {
    let running = 0;
    let most = 0;
    const out = await mapBounded([...Array(50).keys()], 4, async (i) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 2));
      running--;
      return i * 2;
    });
    expect(most).toBe(4);
    expect(out).toEqual([...Array(50).keys()].map((i) => i * 2));
  });

  it('cached: calls while one runs and within the age share it; a failure is not kept', async () => {
    let made = 0;
    let fail = false;
    const get = cached(60_000, async () => {
      made++;
      await new Promise((r) => setTimeout(r, 5));
      if (fail) throw new Error('down');
      return made;
    });
    expect(await Promise.all([get(), get(), get()])).toEqual([1, 1, 1]);
    expect(await get()).toBe(1);
    const again = cached(0, async () => {
      made++;
      if (fail) throw new Error('down');
      return made;
    });
    fail = true;
    await expect(again()).rejects.toThrow('down');
    fail = false;
    expect(await again()).toBe(made);
  });
});

describe('the UDP echo', () => {
  it("knows the cluster's addresses on every plane, IPv4-mapped ones too", () => {
    // Overlay addresses as the overlay's provider holds them (the wireguard plugin's plan).
    const overlay = { interface: 'weft-wg0', self: () => undefined, node: (n: string) => (n === 'n1' ? { ip4: '100.64.0.1', ip6: 'fd77::1' } : undefined), onChange: () => () => undefined };
    const known = clusterAddresses([node('n1', { internalAddresses: ['198.18.0.1'], podCIDRs: ['198.19.1.0/24', 'fd00:1::/64'] })], overlay);
    expect(['198.18.0.1', '198.19.1.77', 'fd00:1::9', '100.64.0.1', 'fd77::1', unmapped('::ffff:198.18.0.1')].map(known)).toEqual([true, true, true, true, true, true]);
    expect(['198.18.0.2', '203.0.113.9', 'fd77::2', 'nonsense'].map(known)).toEqual([false, false, false, false]);
  });

  it('echoes probe datagrams from known addresses only, and counts the others', async () => {
    let refused = 0;
    const server = new ProbeServer({ node: 'n1', started: 'now' }, () => ({}), () => refused++);
    const port = 20000 + Math.floor(Math.random() * 20000);
    await server.start('127.0.0.1', 0, port);
    const client = createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    const echoes: Buffer[] = [];
    client.on('message', (m) => echoes.push(m));
    const datagram = Buffer.alloc(24);
    datagram.writeUInt32BE(UDP_MAGIC, 0);
    const send = async () => {
      client.send(datagram, port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 100));
    };
    try {
      await send();
      expect([echoes.length, refused]).toEqual([0, 1]);
      server.setKnown(clusterAddresses([node('n2', { internalAddresses: ['127.0.0.1'] })]));
      await send();
      expect([echoes.length, refused]).toEqual([1, 1]);
    } finally {
      client.close();
      await server.stop();
    }
  });
});
