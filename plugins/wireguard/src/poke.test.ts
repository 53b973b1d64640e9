import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import type { MeshPlan, PlannedPeer } from './planner.js';
import type { DesiredState, WireGuardDeviceStatus } from '@weft/core';
import { MAX_POKES, newPeers, poke, pokeAddresses, RESET_AFTER_MS, resetAfter, stuckPeers, withoutPeers } from './poke.js';

const peer = (name: string, extra: Partial<PlannedPeer> = {}): PlannedPeer => ({
  name,
  kind: 'node',
  publicKey: `${name}-key`,
  endpoint: `192.0.2.${name.slice(1)}:51820`,
  endpointSource: 'published',
  allowedIPs: [`198.18.${name.slice(1)}.0/24`, `100.64.0.${name.slice(1)}/32`, `fd77:6566:7400::${name.slice(1)}/128`],
  persistentKeepalive: 0,
  location: undefined,
  carries: [name],
  ...extra,
});
const plan = (peers: PlannedPeer[]) => ({ peers }) as unknown as MeshPlan;
const ranges = ['100.64.0.0/10', 'fd77:6566:7400::/64'];

describe('pokeAddresses of the new peers', () => {
  const pokeTargets = (previous: MeshPlan | undefined, next: MeshPlan, overlays: readonly string[]) => pokeAddresses(newPeers(previous, next), overlays);
  it('pokes each new node peer at its overlay address; not the ones it had, not external peers, not peers without an endpoint', () => {
    const before = plan([peer('n2'), peer('n3')]);
    const after = plan([peer('n2'), peer('n3', { endpoint: '192.0.2.33:51820' }), peer('n4'), peer('n5', { endpoint: undefined }), peer('n6', { kind: 'external' })]);
    expect(pokeTargets(before, after, ranges)).toEqual(['100.64.0.3', '100.64.0.4']);
    expect(pokeTargets(undefined, plan([peer('n2')]), ranges)).toEqual(['100.64.0.2']);
  });

  it('without an overlay address, the first address of its first network; at most MAX_POKES', () => {
    expect(pokeTargets(undefined, plan([peer('n7', { allowedIPs: ['198.18.7.0/24'] })]), ranges)).toEqual(['198.18.7.1']);
    const many = Array.from({ length: MAX_POKES + 10 }, (_, i) => peer(`n${String(i + 1)}`, { allowedIPs: [`100.64.1.${String(i % 250)}/32`] }));
    expect(pokeTargets(undefined, plan(many), ranges)).toHaveLength(MAX_POKES);
  });

  it('poke sends one datagram to each address, and shrugs off an address it cannot reach', async () => {
    const got: string[] = [];
    const server = createSocket('udp4');
    await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
    server.on('message', (_m, rinfo) => got.push(rinfo.address));
    await poke(['127.0.0.1', '127.0.0.1', '::1'], server.address().port);
    await new Promise((r) => setTimeout(r, 50));
    server.close();
    expect(got).toEqual(['127.0.0.1', '127.0.0.1']);
  });
});

describe('a joined peer without a handshake', () => {
  const status = (hs: Record<string, number>): WireGuardDeviceStatus => ({
    name: 'weft-wg0',
    publicKey: 'self',
    listenPort: 51820,
    peers: Object.entries(hs).map(([publicKey, latestHandshake]) => ({ publicKey, allowedIPs: [], latestHandshake, receiveBytes: 0, transmitBytes: 0, persistentKeepalive: 0 })),
  });

  it('newPeers: new by key or by endpoint, node peers with an endpoint only', () => {
    const before = plan([peer('n2'), peer('n3')]);
    const after = plan([peer('n2'), peer('n3', { endpoint: '192.0.2.33:51820' }), peer('n4'), peer('n5', { endpoint: undefined }), peer('n6', { kind: 'external' })]);
    expect(newPeers(before, after).map((p) => p.name)).toEqual(['n3', 'n4']);
  });

  it('stuckPeers: the awaited peers the device holds with no handshake; not one it does not hold, not one handshaken', () => {
    const p = plan([peer('n2'), peer('n3'), peer('n4')]);
    expect(stuckPeers(new Set(['n2-key', 'n3-key', 'n4-key']), p, status({ 'n2-key': 0, 'n3-key': 1_800_000_000 })).map((x) => x.name)).toEqual(['n2']);
    expect(stuckPeers(new Set(['n2-key']), p, undefined)).toEqual([]);
    expect(stuckPeers(new Set(), p, status({ 'n2-key': 0 }))).toEqual([]);
  });

  it('resetAfter: of two nodes waiting for each other, one resets first and the other only after twice as long', () => {
    const [a, b] = ['AAAA/key=', 'BBBB/key='];
    expect(resetAfter(a, b)).toBe(RESET_AFTER_MS);
    expect(resetAfter(b, a)).toBe(2 * RESET_AFTER_MS);
    // Whichever pair: the two delays differ, so two resets never start at the same moment.
    for (const [x, y] of [['k1', 'k2'], ['zz', 'aa'], ['+/0', '9az']]) expect(resetAfter(x as string, y as string)).not.toBe(resetAfter(y as string, x as string));
  });

  it('withoutPeers: the same state without those peers in any device, nothing else touched', () => {
    const state: DesiredState = {
      routes: [{ dst: '198.18.2.0/24', dev: 'weft-wg0' }],
      wireguard: [{ name: 'weft-wg0', privateKey: 'k', peers: [{ publicKey: 'n2-key', allowedIPs: [] }, { publicKey: 'n3-key', allowedIPs: [] }] }],
    };
    const out = withoutPeers(state, new Set(['n2-key']));
    expect(out.routes).toBe(state.routes);
    expect(out.wireguard?.[0]?.peers.map((x) => x.publicKey)).toEqual(['n3-key']);
    expect(state.wireguard?.[0]?.peers).toHaveLength(2);
    expect(withoutPeers({ routes: [] }, new Set(['x']))).toEqual({ routes: [] });
  });
});
