import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Change } from './model.js';
import { generateWireGuardKeyPair } from './wgkeys.js';
import { parseWgDump, UapiConnection, uapiDump, uapiRequest, uapiSetRequest, WG_ALLOWED_IPS_ARG_MAX, WG_SET_ARGS_MAX, wgWritePlan } from './wireguard.js';
import { wireGuardPublicKey } from './wgkeys.js';

const peer = (allowedIPs: string[], extra: Record<string, unknown> = {}): Change => ({
  op: 'add',
  kind: 'wgpeer',
  id: 'p',
  object: { device: 'wg0', publicKey: generateWireGuardKeyPair().publicKey, allowedIPs, persistentKeepalive: 0, ...extra },
});
const argBytes = (args: readonly string[]) => args.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);

describe('wgWritePlan', () => {
  it('a few peers: one wg set, keys through files', () => {
    const key = generateWireGuardKeyPair().privateKey;
    const psk = generateWireGuardKeyPair().privateKey;
    const files: string[] = [];
    const plan = wgWritePlan('wg0', [{ op: 'set', kind: 'wireguard', id: 'd', object: { name: 'wg0', privateKey: key, listenPort: 51820, peers: [] }, fields: ['privateKey', 'listenPort'] }, peer(['100.64.0.2/32'], { presharedKey: psk, endpoint: '192.0.2.1:51820' })], (s) => {
      files.push(s);
      return `/k${String(files.length)}`;
    });
    expect(plan.conf).toBeUndefined();
    expect(plan.sets).toHaveLength(1);
    expect(plan.sets[0]?.slice(0, 6)).toEqual(['set', 'wg0', 'private-key', '/k1', 'listen-port', '51820']);
    expect(files).toEqual([key, psk]);
    expect(plan.sets.flat().join(' ')).not.toContain(key);
  });

  it("a peer with 10,000 allowed IPs: no argument carries them, a wg addconf file does, with the peer's key", () => {
    const many = Array.from({ length: 10_000 }, (_, i) => `100.80.${String(i >> 8)}.${String(i & 255)}/32`);
    const c = peer(many, { endpoint: '192.0.2.9:51820' });
    const plan = wgWritePlan('wg0', [c], () => '/k');
    for (const args of plan.sets) for (const a of args) expect(a.length).toBeLessThanOrEqual(WG_ALLOWED_IPS_ARG_MAX);
    expect(plan.sets).toEqual([['set', 'wg0', 'peer', (c.object as { publicKey: string }).publicKey, 'endpoint', '192.0.2.9:51820']]);
    expect(plan.conf).toBe(`[Peer]\nPublicKey = ${(c.object as { publicKey: string }).publicKey}\nAllowedIPs = ${many.join(', ')}\n`);
  });

  it('5,000 peers: several wg set runs, each under the limit, every peer in exactly one', () => {
    const peers = Array.from({ length: 5_000 }, (_, i) => peer([`100.81.${String(i >> 8)}.${String(i & 255)}/32`, `fd00:81::${i.toString(16)}/128`], { endpoint: `192.0.2.1:${String(10_000 + i)}` }));
    const plan = wgWritePlan('wg0', peers, () => '/k');
    expect(plan.sets.length).toBeGreaterThan(1);
    for (const args of plan.sets) expect(argBytes(args)).toBeLessThanOrEqual(WG_SET_ARGS_MAX + 200);
    const named = plan.sets.flatMap((args) => args.filter((_, i) => args[i - 1] === 'peer'));
    expect(named).toEqual(peers.map((p) => (p.object as { publicKey: string }).publicKey));
  });
});

const hex = (b64: string) => Buffer.from(b64, 'base64').toString('hex');

describe('the wireguard-go control socket protocol', () => {
  it('a set request: device fields before any peer, removals, cleared fields, allowed IPs replaced whole', () => {
    const key = generateWireGuardKeyPair().privateKey;
    const [a, b] = [peer(['100.64.0.2/32', 'fd00::2/128'], { endpoint: '192.0.2.1:51820', persistentKeepalive: 25 }), peer([])];
    const update: Change = { ...peer(['100.64.0.3/32']), op: 'replace', fields: ['presharedKey', 'persistentKeepalive', 'allowedIPs'] };
    const text = uapiSetRequest([
      a,
      { ...b, op: 'delete' },
      update,
      { op: 'set', kind: 'wireguard', id: 'd', object: { name: 'wg0', privateKey: key, listenPort: 51820, fwmark: 0, peers: [] }, fields: ['privateKey', 'listenPort', 'fwmark'] },
    ]);
    const pk = (c: Change) => hex((c.object as { publicKey: string }).publicKey);
    expect(text).toBe(
      [
        'set=1',
        `private_key=${hex(key)}`,
        'listen_port=51820',
        'fwmark=0',
        `public_key=${pk(a)}`,
        'endpoint=192.0.2.1:51820',
        'persistent_keepalive_interval=25',
        'replace_allowed_ips=true',
        'allowed_ip=100.64.0.2/32',
        'allowed_ip=fd00::2/128',
        `public_key=${pk(b)}`,
        'remove=true',
        `public_key=${pk(update)}`,
        `preshared_key=${'0'.repeat(64)}`,
        'persistent_keepalive_interval=0',
        'replace_allowed_ips=true',
        'allowed_ip=100.64.0.3/32',
        '',
        '',
      ].join('\n'),
    );
  });

  it('a get answer reads as the lines wg show all dump prints', () => {
    const key = generateWireGuardKeyPair();
    const [p1, p2] = [generateWireGuardKeyPair().publicKey, generateWireGuardKeyPair().publicKey];
    const psk = generateWireGuardKeyPair().privateKey;
    const lines = [`private_key=${hex(key.privateKey)}`, 'listen_port=51820', 'fwmark=81',
      `public_key=${hex(p1)}`, `preshared_key=${hex(psk)}`, 'protocol_version=1', 'endpoint=[2001:db8::1]:51820', 'last_handshake_time_sec=1700000000', 'last_handshake_time_nsec=5', 'tx_bytes=92', 'rx_bytes=148', 'persistent_keepalive_interval=25', 'allowed_ip=100.64.0.2/32', 'allowed_ip=fd00::2/128',
      `public_key=${hex(p2)}`, `preshared_key=${'0'.repeat(64)}`, 'protocol_version=1', 'last_handshake_time_sec=0', 'last_handshake_time_nsec=0', 'tx_bytes=0', 'rx_bytes=0', 'persistent_keepalive_interval=0'];
    expect(uapiDump('wg0', lines, wireGuardPublicKey).split('\n')).toEqual([
      `wg0\t${key.privateKey}\t${key.publicKey}\t51820\t0x51`,
      `wg0\t${p1}\t${psk}\t[2001:db8::1]:51820\t100.64.0.2/32,fd00::2/128\t1700000000\t148\t92\t25`,
      `wg0\t${p2}\t(none)\t(none)\t(none)\t0\t0\t0\toff`,
    ]);
    expect(parseWgDump(uapiDump('wg0', lines, wireGuardPublicKey), new Set(['wg0']))[0]?.fwmark).toBe(0x51);
  });

  it('a request gets the whole answer, however it is split, and its errno; a cut or silent socket is an error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-uapi-'));
    const answers: ((s: Socket) => void)[] = [
      (s) => {
        s.write('listen_port=5');
        setTimeout(() => s.write('1820\nfwmark=0\n'), 5);
        setTimeout(() => s.end('errno=0\n\n'), 10);
      },
      (s) => s.end('errno=-22\n\n'),
      (s) => s.end('listen_port=1\n'),
      () => undefined,
    ];
    let n = 0;
    const server = createServer({ allowHalfOpen: true }, (s) => {
      const answer = answers[n++];
      s.once('data', () => answer?.(s));
    });
    const socket = join(dir, 'wg0.sock');
    await new Promise<void>((r) => server.listen(socket, r));
    try {
      expect(await uapiRequest(socket, 'get=1\n\n')).toEqual({ lines: ['listen_port=51820', 'fwmark=0'], errno: 0 });
      expect(await uapiRequest(socket, 'set=1\nlisten_port=0\n\n')).toEqual({ lines: [], errno: -22 });
      await expect(uapiRequest(socket, 'get=1\n\n')).rejects.toThrow(/ended without errno/);
      await expect(uapiRequest(socket, 'get=1\n\n', 200)).rejects.toThrow(/no answer within 200 ms/);
      await expect(uapiRequest(join(dir, 'none.sock'), 'get=1\n\n')).rejects.toThrow(/none\.sock: connect ENOENT/);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('a kept connection serves request after request, opens a new one when the old was closed, and drops a silent one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-uapi-'));
    const accepted: Socket[] = [];
    let silent = false;
    let requests = 0;
    const server = createServer((s) => {
      accepted.push(s);
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString();
        // Like wireguard-go: one answer per request, the connection stays open.
        while (buf.includes('\n\n')) {
          const end = buf.indexOf('\n\n');
          buf = buf.slice(end + 2);
          requests += 1;
          if (silent) continue;
          const port = String(51820 + requests);
          s.write(`listen_port=${port.slice(0, 2)}`);
          setTimeout(() => s.write(`${port.slice(2)}\nerrno=0\n\n`), 2);
        }
      });
    });
    const socket = join(dir, 'wg0.sock');
    await new Promise<void>((r) => server.listen(socket, r));
    const c = new UapiConnection(socket, 300);
    try {
      const answers = await Promise.all([c.request('get=1\n\n'), c.request('get=1\n\n'), c.request('get=1\n\n')]);
      expect(answers.map((a) => a.lines)).toEqual([['listen_port=51821'], ['listen_port=51822'], ['listen_port=51823']]);
      expect(accepted).toHaveLength(1);
      expect(c.connected).toBe(true);
      // The device went away and came back (wireguard-go closes its connections): the next request reconnects.
      accepted[0]?.destroy();
      await new Promise((r) => setTimeout(r, 20));
      expect((await c.request('get=1\n\n')).lines).toEqual(['listen_port=51824']);
      expect(accepted).toHaveLength(2);
      // A connection closed while the request was on its way is replaced once, and the request answered.
      const closing = accepted[1] as Socket;
      closing.removeAllListeners('data');
      closing.once('data', () => closing.destroy());
      expect((await c.request('get=1\n\n')).lines).toEqual(['listen_port=51825']);
      expect(accepted).toHaveLength(3);
      silent = true;
      await expect(c.request('get=1\n\n')).rejects.toThrow(/no answer within 300 ms/);
      expect(c.connected).toBe(false);
      silent = false;
      expect((await c.request('get=1\n\n')).errno).toBe(0);
      expect(accepted).toHaveLength(4);
      c.close();
      await expect(new UapiConnection(join(dir, 'none.sock')).request('get=1\n\n')).rejects.toThrow(/none\.sock: connect ENOENT/);
    } finally {
      c.close();
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
