/**
 * The contract every kernel backend passes: the in-memory kernel (unit), iproute2 in a fresh network namespace
 * (e2e, root) and, for the kinds this machine lacks, iproute2 in the VM.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDesired, KernelApplyError, type KernelBackend } from './driver.js';
import type { DesiredState, KernelOwner } from './model.js';
import { KernelInputError } from './normalize.js';

/** What a backend under test offers the suite. */
export interface ContractHarness {
  readonly backend: KernelBackend;
  /** Adds objects owned by nobody (another daemon's): link `fx0` (bridge) with 198.51.100.1/24, route 198.51.100.128/25 proto static, rule priority 900. */
  addForeign(): Promise<void>;
  /** Whether the foreign objects are all still there. */
  foreignIntact(): Promise<boolean>;
  /** How many commands (processes) the backend has run so far; memory counts none. */
  commands(): number;
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
        'add route 198.18.10.0/24 table 254 metric 0',
        'add route 198.18.11.0/24 table 100 metric 0',
        'add route 2001:db8:d::/64 table 254 metric 1024',
        'add rule ipv4 priority 1000 fwmark 0x100/0xff00 table 100',
        'add rule ipv6 priority 1001 from 2001:db8:c::/64 table 100',
        'add neighbour wcbr0 192.0.2.9',
        'add fdb wcvx0 00:00:00:00:00:00 dst 192.0.2.20',
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
      const observe = async () => (await h.backend.observe(OWNER, [])).state;
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
      const left = (await h.backend.observe(OWNER, [])).state;
      expect({ ...left, sysctls: [] }).toEqual({ links: [], addresses: [], routes: [], rules: [], neighbours: [], fdb: [], sysctls: [] });
      expect(await h.foreignIntact()).toBe(true);
      expect(summary(await applyDesired(h.backend, OWNER, {}))).toEqual([]);
    });
  });
}
