import { describe, expect, it } from 'vitest';
import { diffState } from './diff.js';
import { batches, ipLines } from './iproute2-render.js';
import { type Json, parseLink, parseRoute } from './iproute2-parse.js';
import { renameEncapKeys } from './iproute2.js';
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

describe('lightweight IP tunnels and GRE in metadata mode', () => {
  it('reads an encap ip route whose tunnel destination repeats the route\'s dst key (as ip -json prints it)', () => {
    const line = '[{"dst":"203.0.113.80","encap":"ip","id":0,"src":"0.0.0.0","dst":"198.19.2.10","ttl":0,"tos":0,"dev":"weft-gre0","protocol":"121","scope":"link","flags":[]}]';
    const [j] = JSON.parse(renameEncapKeys(line)) as Json[];
    expect(parseRoute(j as Json, 4)).toMatchObject({ dst: '203.0.113.80/32', dev: 'weft-gre0', ipEncap: { dst: '198.19.2.10' } });
    expect(renameEncapKeys('[{"dst":"198.18.30.0/24","encap":"mpls","dst":"100/200"}]')).toBe('[{"dst":"198.18.30.0/24","encap":"mpls","labels":"100/200"}]');
  });

  it('reads a GRE device in metadata mode, and writes one with a route through it', () => {
    const link = parseLink({ ifname: 'weft-gre0', mtu: 1476, flags: ['UP'], linkinfo: { info_kind: 'gre', info_data: { external: true, remote: 'any', local: 'any', ttl: 0, pmtudisc: true } } });
    expect(link).toEqual({ name: 'weft-gre0', mtu: 1476, up: true, kind: 'gre', external: true });
    const owner: KernelOwner = { name: 'gt', linkPrefix: 'wg', routeProtocol: 121 };
    const changes = diffState(normalizeDesired(owner, {}), normalizeDesired(owner, { links: [{ kind: 'gre', name: 'wgre0', external: true }], routes: [{ dst: '203.0.113.80/32', table: 300, dev: 'wgre0', ipEncap: { dst: '198.19.2.10', ttl: 64 } }] }));
    expect(changes.flatMap((c) => ipLines(owner, c)).map((l) => l.join(' '))).toEqual([
      'link add name wgre0 type gre external',
      'link set dev wgre0 up',
      'route replace 203.0.113.80/32 encap ip dst 198.19.2.10 ttl 64 dev wgre0 table 300 metric 0 proto 121',
    ]);
    // Refused: a remote on a device in metadata mode, a tunnel route without its device.
    expect(() => normalizeDesired(owner, { links: [{ kind: 'gre', name: 'wgre0', external: true, remote: '192.0.2.1' }], routes: [{ dst: '203.0.113.80/32', via: '192.0.2.1', ipEncap: { dst: '198.19.2.10' } }] })).toThrow(
      /external: a device in metadata mode has no remote, local or key.*ipEncap: needs dev/s,
    );
  });
});

describe('MPLS routes', () => {
  const swap = (dev?: string): DesiredState => ({ mplsRoutes: [{ label: 1000, as: [100], via: '198.19.2.10', ...(dev ? { dev } : {}) }] });
  it('a swap without a device matches the one the kernel picked (no rewrite every reconcile); a named device must match', () => {
    const observed = normalizeDesired(OWNER, swap('pods'));
    expect(diffState(observed, normalizeDesired(OWNER, swap()))).toEqual([]);
    expect(diffState(observed, normalizeDesired(OWNER, swap('other'))).map((c) => `${c.op} ${c.id}`)).toEqual(['replace mpls route 1000']);
    expect(ipLines(OWNER, diffState(EMPTY, normalizeDesired(OWNER, swap()))[0] as never)).toEqual([['route', 'replace', '1000', 'as', '100', 'via', 'inet', '198.19.2.10', 'proto', '150']]);
  });
});
