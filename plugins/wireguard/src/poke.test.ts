import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import type { MeshPlan, PlannedPeer } from './planner.js';
import { MAX_POKES, poke, pokeTargets } from './poke.js';

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

describe('pokeTargets', () => {
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
