/**
 * The contract every kernel backend passes: the in-memory kernel (unit), iproute2 in a fresh network namespace
 * (e2e, root) and, for the kinds this machine lacks, iproute2 in the VM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDesired, KernelApplyError, type KernelBackend } from './driver.js';
import type { DesiredState, KernelOwner, Route } from './model.js';
import { KernelInputError } from './normalize.js';
import { generateWireGuardKeyPair } from './wgkeys.js';

/** What a backend under test offers the suite. */
export interface ContractHarness {
  readonly backend: KernelBackend;
  /** Adds objects owned by nobody (another daemon's): link `fx0` (bridge) with 198.51.100.1/24, route 198.51.100.128/25 proto static, rule priority 900. */
  addForeign(): Promise<void>;
  /** Whether the foreign objects are all still there. */
  foreignIntact(): Promise<boolean>;
  /** How many commands (processes) the backend has run so far; memory counts none. */
  commands(): number;
  /** Every argument of every command run so far (to prove that no secret reached a command line). */
  commandLines(): readonly string[];
  close(): Promise<void>;
}

export const OWNER: KernelOwner = { name: 'contract', linkPrefix: 'wc', routeProtocol: 151, rulePriorities: [1000, 1099] };

/** A desired state using only link kinds every test kernel has (bridge, veth, vxlan). */
export function contractState(variant: { vni?: number; mtu?: number; via?: string } = {}): DesiredState {
  return {
    links: [
      { kind: 'bridge', name: 'wcbr0', mtu: variant.mtu ?? 1400 },
      { kind: 'veth', name: 'wcv0', peer: 'wcv1', master: 'wcbr0' },
      { kind: 'vxlan', name: 'wcvx0', vni: variant.vni ?? 42, port: 4789, local: '192.0.2.1' },
    ],
    addresses: [
      { dev: 'wcbr0', address: '192.0.2.1/24' },
      { dev: 'wcbr0', address: '2001:db8:c::1/64' },
    ],
    routes: [
      { dst: '198.18.10.0/24', dev: 'wcbr0' },
      { dst: '198.18.11.0/24', via: variant.via ?? '192.0.2.2', dev: 'wcbr0', table: 100 },
      { dst: '2001:db8:d::/64', via: '2001:db8:c::2', dev: 'wcbr0' },
    ],
    rules: [
      { priority: 1000, fwmark: 0x100, fwmask: 0xff00, table: 100 },
      { priority: 1001, family: 6, from: '2001:db8:c::/64', table: 100 },
    ],
    neighbours: [{ dev: 'wcbr0', address: '192.0.2.9', lladdr: '02:00:00:00:00:09' }],
    fdb: [{ dev: 'wcvx0', lladdr: '00:00:00:00:00:00', dst: '192.0.2.20' }],
    sysctls: [{ key: 'net.ipv4.ip_forward', value: '1' }],
  };
}

/** The state after the in-place and recreate tests. */
const LATER = contractState({ vni: 43, mtu: 1380, via: '192.0.2.3' });

const summary = (r: { changes: readonly { op: string; id: string }[] }) => r.changes.map((c) => `${c.op} ${c.id}`);

const WG_OWNER: KernelOwner = { name: 'contract-wg', linkPrefix: 'wcg', routeProtocol: 152 };

export function wireGuardContract(name: string, makeHarness: () => Promise<ContractHarness>): void {
  describe(`kernel contract, WireGuard: ${name}`, () => {
    let h: ContractHarness;
    const self = generateWireGuardKeyPair();
    const [a, b, c] = [generateWireGuardKeyPair(), generateWireGuardKeyPair(), generateWireGuardKeyPair()];
    const psk = generateWireGuardKeyPair().privateKey;
    const device = (peers: DesiredState['wireguard'] extends readonly (infer D)[] | undefined ? D extends { peers: infer P } ? P : never : never): DesiredState => ({
      links: [{ kind: 'wireguard', name: 'wcg0', mtu: 1420 }],
      addresses: [{ dev: 'wcg0', address: '100.64.0.1/32' }],
      routes: [{ dst: '198.18.20.0/24', dev: 'wcg0' }],
      wireguard: [{ name: 'wcg0', privateKey: self.privateKey, listenPort: 51820, peers }],
    });
    const peerA = { publicKey: a.publicKey, endpoint: '192.0.2.10:51820', allowedIPs: ['198.18.20.0/24', '100.64.0.2/32'], persistentKeepalive: 25 };
    const peerB = { publicKey: b.publicKey, presharedKey: psk, endpoint: '[2001:db8::b]:51820', allowedIPs: ['100.64.0.3/32'] };

    beforeAll(async () => {
      h = await makeHarness();
    });
    afterAll(async () => {
      await h?.close();
    });

    it('creates a device with its peers, then makes zero changes', async () => {
      const r = await applyDesired(h.backend, WG_OWNER, device([peerA, peerB]));
      expect(summary(r).sort()).toEqual(
        ['add link wcg0', 'add address wcg0 100.64.0.1/32', 'add route 198.18.20.0/24 table 254 metric 0', 'set wireguard wcg0', `add wgpeer wcg0 ${a.publicKey}`, `add wgpeer wcg0 ${b.publicKey}`].sort(),
      );
      expect(summary(await applyDesired(h.backend, WG_OWNER, device([peerA, peerB])))).toEqual([]);
      const observed = (await h.backend.observe(WG_OWNER)).state.wireguard[0];
      expect(observed?.listenPort).toBe(51820);
      expect(observed?.peers.find((p) => p.publicKey === b.publicKey)).toMatchObject({ presharedKey: psk, endpoint: '[2001:db8::b]:51820', allowedIPs: ['100.64.0.3/32'] });
    });

    it('reports run-time status (public keys only) and the interfaces with their MTU', async () => {
      const [status] = await h.backend.wireguardStatus(new Set(['wcg0', 'absent0']));
      expect(status).toEqual({
        name: 'wcg0',
        publicKey: self.publicKey,
        listenPort: 51820,
        peers: [
          { publicKey: a.publicKey, endpoint: '192.0.2.10:51820', allowedIPs: ['100.64.0.2/32', '198.18.20.0/24'], latestHandshake: 0, receiveBytes: 0, transmitBytes: 0, persistentKeepalive: 25 },
          { publicKey: b.publicKey, endpoint: '[2001:db8::b]:51820', allowedIPs: ['100.64.0.3/32'], latestHandshake: 0, receiveBytes: 0, transmitBytes: 0, persistentKeepalive: 0 },
        ].sort((x, y) => (x.publicKey < y.publicKey ? -1 : 1)),
      });
      expect(JSON.stringify(status)).not.toContain(self.privateKey);
      expect(JSON.stringify(status)).not.toContain(psk);
      const wg = (await h.backend.interfaces()).find((i) => i.name === 'wcg0');
      expect(wg).toMatchObject({ name: 'wcg0', mtu: 1420, addresses: ['100.64.0.1/32'] });
    });

    it('updates one peer in place and leaves the others alone; adds and removes peers one by one', async () => {
      const changed = { ...peerA, allowedIPs: ['198.18.20.0/24', '198.18.21.0/24', '100.64.0.2/32'] };
      const r = await applyDesired(h.backend, WG_OWNER, device([changed, peerB]));
      expect(summary(r)).toEqual([`replace wgpeer wcg0 ${a.publicKey}`]);
      expect(r.changes[0]?.fields).toEqual(['allowedIPs']);
      const peerC = { publicKey: c.publicKey, allowedIPs: ['100.64.0.4/32'] };
      const r2 = await applyDesired(h.backend, WG_OWNER, device([changed, peerC]));
      expect(summary(r2)).toEqual([`delete wgpeer wcg0 ${b.publicKey}`, `add wgpeer wcg0 ${c.publicKey}`]);
      expect(summary(await applyDesired(h.backend, WG_OWNER, device([changed, peerC])))).toEqual([]);
    });

    it('heals a peer removed behind its back', async () => {
      const peerC = { publicKey: c.publicKey, allowedIPs: ['100.64.0.4/32'] };
      const changed = { ...peerA, allowedIPs: ['198.18.20.0/24', '198.18.21.0/24', '100.64.0.2/32'] };
      await h.backend.execute(WG_OWNER, [{ op: 'delete', kind: 'wgpeer', id: 'drift', object: { ...peerC, persistentKeepalive: 0, device: 'wcg0' } }]);
      expect(summary(await applyDesired(h.backend, WG_OWNER, device([changed, peerC])))).toEqual([`add wgpeer wcg0 ${c.publicKey}`]);
    });

    it('gives a peer 10,000 allowed IPs (one argument would be over the kernel limit: E2BIG), then makes zero changes', async () => {
      const many = Array.from({ length: 10_000 }, (_, i) => `100.80.${String(i >> 8)}.${String(i & 255)}/32`);
      const big = { publicKey: c.publicKey, allowedIPs: many };
      const r = await applyDesired(h.backend, WG_OWNER, device([peerA, big]));
      expect(summary(r)).toContain(`replace wgpeer wcg0 ${c.publicKey}`);
      const observed = (await h.backend.observe(WG_OWNER)).state.wireguard[0]?.peers.find((p) => p.publicKey === c.publicKey);
      expect(observed?.allowedIPs.length).toBe(10_000);
      expect(summary(await applyDesired(h.backend, WG_OWNER, device([peerA, big])))).toEqual([]);
      // Shorter again: the long list is replaced, not added to.
      expect(summary(await applyDesired(h.backend, WG_OWNER, device([peerA, { ...big, allowedIPs: ['100.64.0.4/32'] }])))).toEqual([`replace wgpeer wcg0 ${c.publicKey}`]);
      expect((await h.backend.observe(WG_OWNER)).state.wireguard[0]?.peers.find((p) => p.publicKey === c.publicKey)?.allowedIPs).toEqual(['100.64.0.4/32']);
    });

    it('never puts a key on a command line', () => {
      const lines = h.commandLines().join(' ');
      for (const secret of [self.privateKey, psk]) expect(lines).not.toContain(secret);
    });

    it('tears the device down with its link', async () => {
      const r = await applyDesired(h.backend, WG_OWNER, {});
      expect(summary(r)).toContain('delete link wcg0');
      expect((await h.backend.observe(WG_OWNER)).state).toMatchObject({ links: [], wireguard: [] });
    });
  });
}

const NFT_OWNER: KernelOwner = { name: 'cnft', linkPrefix: 'wcn', routeProtocol: 153 };
const nftState = (port: number): DesiredState => ({
  nftables: [
    {
      family: 'inet',
      name: 'weft-cnft',
      body: [
        'set peers {',
        '  type ipv4_addr',
        '  elements = { 192.0.2.1, 192.0.2.2 }',
        '}',
        'chain forward {',
        '  type filter hook forward priority 0; policy accept;',
        `  ip daddr @peers udp dport ${port} counter accept`,
        '}',
      ].join('\n'),
    },
  ],
});

export function nftablesContract(name: string, makeHarness: () => Promise<ContractHarness>): void {
  describe(`kernel contract, nftables: ${name}`, () => {
    let h: ContractHarness;
    beforeAll(async () => {
      h = await makeHarness();
    });
    afterAll(async () => {
      await h?.close();
    });

    it('creates a table, replaces it whole when it differs, and makes zero changes otherwise', async () => {
      expect(summary(await applyDesired(h.backend, NFT_OWNER, nftState(51820)))).toEqual(['add nftables inet weft-cnft']);
      expect(summary(await applyDesired(h.backend, NFT_OWNER, nftState(51820)))).toEqual([]);
      expect(summary(await applyDesired(h.backend, NFT_OWNER, nftState(51821)))).toEqual(['replace nftables inet weft-cnft']);
      expect(summary(await applyDesired(h.backend, NFT_OWNER, nftState(51821)))).toEqual([]);
    });

    it('refuses a table outside its name or a body that reaches outside the table', async () => {
      const bad: DesiredState = {
        nftables: [
          { family: 'inet', name: 'filter', body: '' },
          { family: 'inet', name: 'weft-cnft-x', body: 'chain c {\n}\n}\ntable inet evil {' },
          { family: 'inet', name: 'weft-cnft-y', body: 'flush ruleset' },
        ],
      };
      const err = await applyDesired(h.backend, NFT_OWNER, bad).catch((e: unknown) => e);
      expect((err as KernelInputError).problems).toEqual([
        'nftables table "filter": name must be "weft-cnft" or start with "weft-cnft-" (letters, digits, _ and -)',
        'nftables table "weft-cnft-x": body: unbalanced braces',
        'nftables table "weft-cnft-y": body: "flush ruleset" reaches outside the table',
      ]);
    });

    it('changes a map element by element, counters one by one, and the body as a whole', async () => {
      const mark = (i: number) => `0x${(i << 16).toString(16).padStart(8, '0')}`;
      const table = (buckets: number[], counters: string[], port = 4000): DesiredState => ({
        nftables: [
          {
            family: 'inet',
            name: 'weft-cnft',
            body: [
              `map buckets { typeof numgen inc mod 4093 : meta mark; size 4096; }`,
              'map counted { type mark : counter; }',
              'chain pre {',
              '  type filter hook prerouting priority mangle; policy accept;',
              `  udp dport ${String(port)} meta mark set jhash ip saddr mod 4093 seed 0x7 map @buckets`,
              '  meta mark != 0 counter name meta mark map @counted',
              '}',
            ].join('\n'),
            elements: {
              buckets: buckets.map((e, i) => `${String(i)} : ${mark(e)}`),
              counted: counters.map((c) => `${mark(Number(c.slice(1)))} : "${c}"`),
            },
            counters,
          },
        ],
      });
      const first = Array.from({ length: 4093 }, (_, i) => (i % 3) + 1);
      // The table of the case before, replaced by this one.
      expect(summary(await applyDesired(h.backend, NFT_OWNER, table(first, ['e1', 'e2', 'e3'])))).toEqual(['replace nftables inet weft-cnft']);
      expect(summary(await applyDesired(h.backend, NFT_OWNER, table(first, ['e1', 'e2', 'e3'])))).toEqual([]);
      // Endpoint 3 leaves: its buckets go to 1 and 2, its counter goes; nothing else is written.
      const second = first.map((e, i) => (e === 3 ? (i % 2) + 1 : e));
      const before = h.commands();
      const changed = await applyDesired(h.backend, NFT_OWNER, table(second, ['e1', 'e2']));
      expect(changed.changes.map((c) => [c.op, c.id, c.fields])).toEqual([['set', 'nftables inet weft-cnft', ['buckets +1364 -1364', 'counted +0 -1', 'counters +0 -1']]]);
      expect(h.commands() - before).toBeLessThanOrEqual(4); // the read (ip, nft), one nft -f, one listing after it
      expect(summary(await applyDesired(h.backend, NFT_OWNER, table(second, ['e1', 'e2'])))).toEqual([]);
      const seen = (await h.backend.observe(NFT_OWNER, { nftables: true })).state.nftables[0];
      expect(seen?.elements?.buckets?.length).toBe(4093);
      expect(seen?.elements?.buckets).toContain(`2 : ${mark(1)}`);
      expect(seen?.counters).toEqual(['e1', 'e2']);
      // The body changes: the whole table, elements and counters with it.
      expect(summary(await applyDesired(h.backend, NFT_OWNER, table(second, ['e1', 'e2'], 4001)))).toEqual(['replace nftables inet weft-cnft']);
      expect(summary(await applyDesired(h.backend, NFT_OWNER, table(second, ['e1', 'e2'], 4001)))).toEqual([]);
      // Bad elements are refused before anything runs.
      const bad = { nftables: [{ family: 'inet' as const, name: 'weft-cnft', body: 'set s { type mark; }', elements: { s: ['1 }; flush ruleset; {'], 'x y': [] }, counters: ['a b'] }] };
      const err = await applyDesired(h.backend, NFT_OWNER, bad).catch((e: unknown) => e);
      expect((err as KernelInputError).problems).toEqual([
        'nftables table "weft-cnft": elements.s: "1 }; flush ruleset; {" is not an element as nft lists one (KEY or KEY : VALUE)',
        'nftables table "weft-cnft": elements: set name "x y": expected letters, digits and _ (at most 32)',
        'nftables table "weft-cnft": counters: "a b": expected letters, digits and _ (at most 32)',
      ]);
    });

    it('deletes its table on teardown', async () => {
      expect(summary(await applyDesired(h.backend, NFT_OWNER, {}))).toEqual(['delete nftables inet weft-cnft']);
      expect((await h.backend.observe(NFT_OWNER, { nftables: true })).state.nftables).toEqual([]);
    });
  });
}

export function kernelContract(name: string, makeHarness: () => Promise<ContractHarness>): void {
  describe(`kernel contract: ${name}`, () => {
    let h: ContractHarness;
    beforeAll(async () => {
      h = await makeHarness();
      await h.addForeign();
    });
    afterAll(async () => {
      await h?.close();
    });

    it('creates from empty, and a second apply of the same state makes zero changes', async () => {
      const first = await applyDesired(h.backend, OWNER, contractState());
      expect(summary(first)).toEqual([
        'add link wcbr0',
        'add link wcv0',
        'add link wcvx0',
        'add address wcbr0 192.0.2.1/24',
        'add address wcbr0 2001:db8:c::1/64',
        'add neighbour wcbr0 192.0.2.9',
        'add fdb wcvx0 00:00:00:00:00:00 dst 192.0.2.20',
        'add route 198.18.10.0/24 table 254 metric 0',
        'add route 198.18.11.0/24 table 100 metric 0',
        'add route 2001:db8:d::/64 table 254 metric 1024',
        'add rule ipv4 priority 1000 fwmark 0x100/0xff00 table 100',
        'add rule ipv6 priority 1001 from 2001:db8:c::/64 table 100',
        'set sysctl net.ipv4.ip_forward',
      ]);
      const again = await applyDesired(h.backend, OWNER, contractState());
      expect(summary(again)).toEqual([]);
    });

    it('changes one attribute in place: mtu by set, a route by replace', async () => {
      const r = await applyDesired(h.backend, OWNER, contractState({ mtu: 1380, via: '192.0.2.3' }));
      expect(summary(r)).toEqual(['set link wcbr0', 'replace route 198.18.11.0/24 table 100 metric 0']);
      expect(r.changes[0]?.fields).toEqual(['mtu']);
      expect(summary(await applyDesired(h.backend, OWNER, contractState({ mtu: 1380, via: '192.0.2.3' })))).toEqual([]);
    });

    it('recreates a link whose immutable attribute changed (vxlan VNI), and restores what went with it', async () => {
      const r = await applyDesired(h.backend, OWNER, LATER);
      expect(summary(r)).toEqual(['delete link wcvx0', 'add link wcvx0', 'add fdb wcvx0 00:00:00:00:00:00 dst 192.0.2.20']);
      expect(summary(await applyDesired(h.backend, OWNER, LATER))).toEqual([]);
    });

    it('heals drift: what was deleted behind its back comes back, and only that', async () => {
      const observe = async () => (await h.backend.observe(OWNER)).state;
      const ids = (st: Awaited<ReturnType<typeof observe>>) =>
        new Set([
          ...st.links.map((l) => `link ${l.name}`),
          ...st.addresses.map((a) => `address ${a.dev} ${a.address}`),
          ...st.routes.map((r) => `route ${r.dst} table ${r.table} metric ${r.metric}`),
          ...st.neighbours.map((n) => `neighbour ${n.dev} ${n.address}`),
          ...st.fdb.map((f) => `fdb ${f.dev} ${f.lladdr} dst ${f.dst}`),
        ]);
      // Delete one object of each kind behind the driver's back; the kernel may take dependants with it (a
      // route whose gateway lost its subnet, a link's addresses): the next apply restores exactly what is missing.
      const victims: [string, (st: Awaited<ReturnType<typeof observe>>) => unknown][] = [
        ['route', (st) => st.routes.find((r) => r.dst === '198.18.10.0/24')],
        ['address', (st) => st.addresses.find((a) => a.address === '192.0.2.1/24')],
        ['link', (st) => st.links.find((l) => l.name === 'wcvx0')],
      ];
      for (const [kind, pick] of victims) {
        const before = await observe();
        const object = pick(before);
        expect(object, kind).toBeTruthy();
        await h.backend.execute(OWNER, [{ op: 'delete', kind: kind as 'route', id: `drift ${kind}`, object: object as never }]);
        const after = ids(await observe());
        const missing = [...ids(before)].filter((id) => !after.has(id)).sort();
        expect(missing.length, kind).toBeGreaterThan(0);
        const healed = await applyDesired(h.backend, OWNER, LATER);
        expect(healed.changes.every((c) => c.op === 'add' || c.op === 'replace'), kind).toBe(true);
        expect(healed.changes.map((c) => c.id).sort(), kind).toEqual(missing);
        expect(summary(await applyDesired(h.backend, OWNER, LATER)), kind).toEqual([]);
      }
    });

    it('names the failing object and converges on the next apply', async () => {
      const broken: DesiredState = { ...LATER, routes: [...(LATER.routes ?? []), { dst: '198.18.12.0/24', dev: 'nosuch0' }] };
      const err = await applyDesired(h.backend, OWNER, broken).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KernelApplyError);
      expect((err as KernelApplyError).failed.id).toBe('route 198.18.12.0/24 table 254 metric 0');
      expect((err as KernelApplyError).message).toMatch(/^route 198\.18\.12\.0\/24 table 254 metric 0: .*(Cannot find device|nosuch0)/);
      expect(summary(await applyDesired(h.backend, OWNER, LATER))).toEqual([]);
    });

    it('refuses a route via a gateway on no connected network (Linux: "Nexthop has invalid gateway"), takes it onlink or once the network is there', async () => {
      const base: DesiredState = { links: [{ kind: 'bridge', name: 'wcgw0' }], addresses: [{ dev: 'wcgw0', address: '198.18.30.1/24' }] };
      const far: Route = { dst: '198.18.31.0/24', via: '198.18.99.1', dev: 'wcgw0' };
      const err = await applyDesired(h.backend, OWNER, { ...base, routes: [far] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KernelApplyError);
      expect((err as KernelApplyError).failed.id).toBe('route 198.18.31.0/24 table 254 metric 0');
      expect((err as KernelApplyError).message).toMatch(/invalid gateway|No route to host|Network is unreachable/);
      // A gateway on the link's network, or one declared on-link, is taken.
      const near: Route = { dst: '198.18.31.0/24', via: '198.18.30.254', dev: 'wcgw0' };
      expect(summary(await applyDesired(h.backend, OWNER, { ...base, routes: [near] })).length).toBeGreaterThan(0);
      expect(summary(await applyDesired(h.backend, OWNER, { ...base, routes: [{ ...far, onlink: true }] }))).toEqual(['replace route 198.18.31.0/24 table 254 metric 0']);
      await applyDesired(h.backend, OWNER, {});
    });

    it('a VXLAN peer: neighbour and FDB entry go in before the route that needs them, out after it; a moved peer is replaced in place', async () => {
      const vtep = (underlay: string): DesiredState => ({
        links: [{ kind: 'vxlan', name: 'wcvp0', vni: 7, port: 4789, local: '192.0.2.1', address: '02:00:00:00:07:01', mtu: 1450 }],
        addresses: [{ dev: 'wcvp0', address: '198.19.1.0/32' }],
        neighbours: [{ dev: 'wcvp0', address: '198.19.2.0', lladdr: '02:00:00:00:07:02' }],
        fdb: [{ dev: 'wcvp0', lladdr: '02:00:00:00:07:02', dst: underlay }],
        routes: [{ dst: '198.19.2.0/24', via: '198.19.2.0', dev: 'wcvp0', onlink: true }],
      });
      const made = summary(await applyDesired(h.backend, OWNER, vtep('192.0.2.30')));
      const at = (id: string) => made.findIndex((c) => c.endsWith(id));
      expect(at('route 198.19.2.0/24 table 254 metric 0')).toBeGreaterThan(at('neighbour wcvp0 198.19.2.0'));
      expect(at('route 198.19.2.0/24 table 254 metric 0')).toBeGreaterThan(at('fdb wcvp0 02:00:00:00:07:02 dst 192.0.2.30'));
      expect(summary(await applyDesired(h.backend, OWNER, vtep('192.0.2.30')))).toEqual([]);
      // The peer's underlay address changed: one `bridge fdb replace`, no moment without an entry for its MAC.
      expect(summary(await applyDesired(h.backend, OWNER, vtep('192.0.2.31')))).toEqual(['replace fdb wcvp0 02:00:00:00:07:02 dst 192.0.2.31']);
      expect((await h.backend.observe(OWNER)).state.fdb).toEqual([{ dev: 'wcvp0', lladdr: '02:00:00:00:07:02', dst: '192.0.2.31' }]);
      // The peer left: the route goes first, then what it pointed at.
      const { routes: _r, neighbours: _n, fdb: _f, ...bare } = vtep('192.0.2.31');
      const left = summary(await applyDesired(h.backend, OWNER, bare));
      expect(left).toEqual(['delete route 198.19.2.0/24 table 254 metric 0', 'delete neighbour wcvp0 198.19.2.0', 'delete fdb wcvp0 02:00:00:00:07:02 dst 192.0.2.31']);
      await applyDesired(h.backend, OWNER, {});
    });

    it('a route without a device takes the one the kernel picks by its next hop, and stays unchanged after', async () => {
      const base: DesiredState = { links: [{ kind: 'bridge', name: 'wcnd0' }], addresses: [{ dev: 'wcnd0', address: '198.18.34.1/24' }] };
      const state: DesiredState = { ...base, routes: [{ dst: '198.18.35.0/24', via: '198.18.34.2' }] };
      expect(summary(await applyDesired(h.backend, OWNER, state))).toContain('add route 198.18.35.0/24 table 254 metric 0');
      expect(summary(await applyDesired(h.backend, OWNER, state))).toEqual([]);
      await applyDesired(h.backend, OWNER, {});
    });

    it('takes a route to lo, which every namespace has (no link of the desired state needed)', async () => {
      const toLo: DesiredState = { routes: [{ dst: '198.18.33.0/24', dev: 'lo' }] };
      expect(summary(await applyDesired(h.backend, OWNER, toLo))).toEqual(['add route 198.18.33.0/24 table 254 metric 0']);
      expect(summary(await applyDesired(h.backend, OWNER, toLo))).toEqual([]);
      await applyDesired(h.backend, OWNER, {});
    });

    it('takes one address on two links, as Linux does (it is per link; nothing refuses the second)', async () => {
      const both: DesiredState = {
        links: [
          { kind: 'bridge', name: 'wcd0' },
          { kind: 'bridge', name: 'wcd1' },
        ],
        addresses: [
          { dev: 'wcd0', address: '198.18.32.1/24' },
          { dev: 'wcd1', address: '198.18.32.1/24' },
        ],
      };
      expect(summary(await applyDesired(h.backend, OWNER, both)).filter((c) => c.includes('address')).sort()).toEqual(['add address wcd0 198.18.32.1/24', 'add address wcd1 198.18.32.1/24']);
      expect(summary(await applyDesired(h.backend, OWNER, both))).toEqual([]);
      await applyDesired(h.backend, OWNER, {});
    });

    it('refuses bad input before any command runs', async () => {
      const before = h.commands();
      const bad: DesiredState = {
        links: [
          { kind: 'bridge', name: 'wc bad' },
          { kind: 'bridge', name: 'wc0\nlink del lo' },
          { kind: 'bridge', name: 'other0' },
          { kind: 'vxlan', name: 'wcvx9', vni: 1 << 25 },
        ],
        addresses: [{ dev: 'wcbr0', address: '192.0.2.1' }],
        routes: [{ dst: '198.18.10.1/24', dev: 'wcbr0' }, { dst: '198.18.13.0/24', via: '192.0.2.2 dev lo' }, { dst: '198.18.14.0/24', dev: '-v', mpls: [3] }],
        rules: [{ priority: 5, table: 100 }],
        neighbours: [{ dev: 'wcbr0', address: '192.0.2.9', lladdr: 'zz:00:00:00:00:09' }],
        sysctls: [{ key: 'net.ipv4.ip_forward', value: '1\n' }],
      };
      const err = await applyDesired(h.backend, OWNER, bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KernelInputError);
      expect((err as KernelInputError).problems).toEqual([
        'link "wc bad": name "wc bad": expected an interface name (1-15 of A-Z a-z 0-9 _ . -, not starting with - or .)',
        'link "wc0\\nlink del lo": name "wc0\\nlink del lo": expected an interface name (1-15 of A-Z a-z 0-9 _ . -, not starting with - or .)',
        'link "other0": name "other0" must start with the owner\'s link prefix "wc"',
        'link "wcvx9": vni 33554432: expected an integer 0-16777215',
        'address "192.0.2.1": dev "wcbr0" is not a link of this desired state',
        'address "192.0.2.1": expected address/prefix like 192.0.2.1/24 or fd00::1/64',
        'route "198.18.10.1/24": dst "198.18.10.1/24" has host bits set; the network is 198.18.10.0/24',
        'route "198.18.13.0/24": via "192.0.2.2 dev lo": expected an IPv4 address',
        'route "198.18.14.0/24": dev "-v": expected an interface name (1-15 of A-Z a-z 0-9 _ . -, not starting with - or .)',
        'route "198.18.14.0/24": mpls[0] 3: expected an integer 16-1048575',
        "rule priority 5: priority outside the owner's range 1000-1099",
        'neighbour "192.0.2.9": dev "wcbr0" is not a link of this desired state',
        'neighbour "192.0.2.9": lladdr "zz:00:00:00:00:09": expected a MAC address like 02:00:00:00:00:01',
        'sysctl "net.ipv4.ip_forward": value "1\\n": expected words of A-Z a-z 0-9 . _ : / - separated by single spaces',
      ]);
      expect(h.commands()).toBe(before);
    });

    it('tears down everything it owns and nothing else; foreign objects survive throughout', async () => {
      expect(await h.foreignIntact()).toBe(true);
      const r = await applyDesired(h.backend, OWNER, {});
      expect(summary(r).every((s) => s.startsWith('delete '))).toBe(true);
      const left = (await h.backend.observe(OWNER)).state;
      expect({ ...left, sysctls: [] }).toEqual({ links: [], addresses: [], routes: [], rules: [], neighbours: [], fdb: [], sysctls: [], wireguard: [], nftables: [], mplsRoutes: [] });
      expect(await h.foreignIntact()).toBe(true);
      expect(summary(await applyDesired(h.backend, OWNER, {}))).toEqual([]);
    });
  });
}
