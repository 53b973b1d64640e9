import { describe, expect, it } from 'vitest';
import { diffState } from './diff.js';
import { batches } from './iproute2-render.js';
import { normalizeDesired } from './normalize.js';
import type { DesiredState, KernelOwner } from './model.js';

const OWNER: KernelOwner = { name: 'vx', linkPrefix: 'wv', routeProtocol: 150 };
const EMPTY = normalizeDesired(OWNER, {});

/** The overlay's state for one peer, as the vxlan plugin plans it. */
const peer = (underlay: string): DesiredState => ({
  links: [{ kind: 'vxlan', name: 'wvx0', vni: 1, local: '198.18.1.11', address: '02:00:00:00:00:01' }],
  addresses: [{ dev: 'wvx0', address: '198.19.1.0/32' }],
  neighbours: [{ dev: 'wvx0', address: '198.19.2.0', lladdr: '02:00:00:00:00:02' }],
  fdb: [{ dev: 'wvx0', lladdr: '02:00:00:00:00:02', dst: underlay }],
  routes: [{ dst: '198.19.2.0/24', via: '198.19.2.0', dev: 'wvx0', onlink: true }],
});

/** The order the kernel sees the changes in: batch by batch, each batch's lines in order. */
const executed = (from: DesiredState | undefined, to: DesiredState) =>
  batches(diffState(from ? normalizeDesired(OWNER, from) : EMPTY, normalizeDesired(OWNER, to))).flatMap((b) => b.changes.map((c) => `${b.tool}: ${c.op} ${c.kind}`));

describe('the order of writes across tools (ip, bridge)', () => {
  it('writes a new peer\'s neighbour and FDB entry before its route: never a route whose next hop cannot resolve', () => {
    expect(executed(undefined, peer('198.18.2.12'))).toEqual([
      'ip: add link',
      'ip: add address',
      'ip: add neighbour',
      'bridge: add fdb',
      'ip: add route',
    ]);
  });

  it('removes a leaving peer\'s route before its neighbour and FDB entry', () => {
    const { routes: _r, neighbours: _n, fdb: _f, ...bare } = peer('198.18.2.12');
    expect(executed(peer('198.18.2.12'), bare)).toEqual(['ip: delete route', 'ip: delete neighbour', 'bridge: delete fdb']);
  });

  it('moves a peer to a new underlay address with one FDB replace, touching nothing else', () => {
    expect(executed(peer('198.18.2.12'), peer('198.18.3.12'))).toEqual(['bridge: replace fdb']);
  });

  it('keeps one ip batch when there is no FDB entry to put between', () => {
    const { fdb: _f, ...noFdb } = peer('198.18.2.12');
    expect(batches(diffState(EMPTY, normalizeDesired(OWNER, noFdb))).map((b) => b.tool)).toEqual(['ip']);
  });
});
