import { describe, expect, it } from 'vitest';
import type { Change } from './model.js';
import { generateWireGuardKeyPair } from './wgkeys.js';
import { WG_ALLOWED_IPS_ARG_MAX, WG_SET_ARGS_MAX, wgWritePlan } from './wireguard.js';

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
