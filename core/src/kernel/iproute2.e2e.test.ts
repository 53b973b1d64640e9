import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { freshNetns, netnsSkipReason, skipNote } from '../../../test/support/capabilities.js';
import { contractState, kernelContract, nftablesContract, OWNER, wireGuardContract } from './contract.testsuite.js';
import { Iproute2Kernel } from './iproute2.js';
import { countingRunner, netnsHarness } from './netns-harness.testsuite.js';

const skip = await netnsSkipReason();
// This machine's kernel has no WireGuard module: the driver then runs wireguard-go (auto mode).
const wgNote = kernelHasWireGuard() ? 'kernel module or wireguard-go' : 'wireguard-go';

/** Whether the running kernel has WireGuard: loaded, built in, or a module it could load. */
function kernelHasWireGuard(): boolean {
  if (existsSync('/sys/module/wireguard')) return true;
  const dir = `/lib/modules/${release()}`;
  const lists = ['modules.dep', 'modules.builtin'].map((f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : ''));
  return lists.some((text) => text.includes('/wireguard.ko'));
}

describe.skipIf(skip)(`iproute2 kernel in a fresh network namespace${skipNote(skip)}`, () => {
  kernelContract('iproute2 in a netns', () => netnsHarness('kc'));
  wireGuardContract(`iproute2 in a netns (WireGuard: ${wgNote})`, () => netnsHarness('kw'));
  nftablesContract('iproute2 in a netns', () => netnsHarness('kn'));

  it('replaces an nftables table edited by hand, and leaves a foreign table alone', async () => {
    const ns = await freshNetns('kn2');
    try {
      const owner = { name: 'nx', linkPrefix: 'wnx', routeProtocol: 160 };
      const nft = (input: string) => execa('ip', ['netns', 'exec', ns.name, 'nft', '-f', '-'], { input });
      await nft('table ip other {\n chain c {\n  type filter hook input priority 0;\n }\n}\n');
      const desired = { nftables: [{ family: 'inet' as const, name: 'weft-nx', body: 'chain c {\n  type filter hook forward priority 0; policy accept;\n  counter\n}' }] };
      const kernel = new Iproute2Kernel({ kind: 'named', name: ns.name });
      expect((await kernel.apply(owner, desired)).changes.map((c) => c.id)).toEqual(['nftables inet weft-nx']);
      expect((await kernel.apply(owner, desired)).changes).toEqual([]);
      await execa('ip', ['netns', 'exec', ns.name, 'nft', 'add', 'rule', 'inet', 'weft-nx', 'c', 'ip', 'daddr', '198.18.0.1', 'drop']);
      expect((await kernel.apply(owner, desired)).changes.map((c) => `${c.op} ${c.id}`)).toEqual(['replace nftables inet weft-nx']);
      const listing = (await execa('ip', ['netns', 'exec', ns.name, 'nft', 'list', 'ruleset'])).stdout;
      expect(listing).not.toContain('198.18.0.1');
      // A fresh driver (a restarted agent) replaces once, then is steady.
      const restarted = new Iproute2Kernel({ kind: 'named', name: ns.name });
      expect((await restarted.apply(owner, desired)).changes.map((c) => c.op)).toEqual(['replace']);
      expect((await restarted.apply(owner, desired)).changes).toEqual([]);
      await restarted.apply(owner, {});
      expect((await execa('ip', ['netns', 'exec', ns.name, 'nft', 'list', 'tables'])).stdout.trim()).toBe('table ip other');
    } finally {
      await ns.remove();
    }
  });

  it('reads with a few processes and writes a whole state with one batch per tool', async () => {
    const ns = await freshNetns('kb');
    try {
      const counting = countingRunner();
      const kernel = new Iproute2Kernel({ kind: 'named', name: ns.name }, { runner: counting.runner });
      const cold = await kernel.apply(OWNER, contractState());
      // reads: ip -4, ip -6, sysctl, and once nft (and ip -f mpls where the MPLS module is loaded: the first read of
      // an owner looks for what a past run left); writes: ip -batch, ip -6 -batch (the IPv6 rule), bridge -batch
      // (FDB), sysctl -w.
      expect(cold.processes).toBe(existsSync('/proc/sys/net/mpls') ? 9 : 8);
      const steady = await kernel.apply(OWNER, contractState());
      expect(steady.changes).toEqual([]);
      // reads only: ip -4, ip -6, bridge fdb (a vxlan link exists), sysctl
      expect(steady.processes).toBe(4);
      const text = (await execa('ip', ['-n', ns.name, '-d', 'link', 'show', 'wcvx0'])).stdout;
      expect(text).toMatch(/vxlan id 42 local 192\.0\.2\.1 .*dstport 4789 nolearning/s);
      const route = (await execa('ip', ['-n', ns.name, 'route', 'show', '198.18.11.0/24', 'table', '100'])).stdout;
      // A bridge without ports loses its carrier a moment after it comes up; the route then also reads `linkdown`.
      expect(route.trim()).toMatch(/^198\.18\.11\.0\/24 via 192\.0\.2\.2 dev wcbr0 proto 151( linkdown)?$/);
      const forward = (await execa('ip', ['netns', 'exec', ns.name, 'sysctl', '-n', 'net.ipv4.ip_forward'])).stdout;
      expect(forward).toBe('1');
    } finally {
      await ns.remove();
    }
  });

  it('an owner without rules is read by one ip process: both families of addresses, routes and neighbours', async () => {
    const ns = await freshNetns('kr');
    try {
      const owner = { ...OWNER, name: 'contract-norules', rulePriorities: undefined };
      const state = { ...contractState(), rules: [], neighbours: [...(contractState().neighbours ?? []), { dev: 'wcbr0', address: '2001:db8:c::9', lladdr: '02:00:00:00:00:19' }] };
      const counting = countingRunner();
      const kernel = new Iproute2Kernel({ kind: 'named', name: ns.name }, { runner: counting.runner });
      await kernel.apply(owner, state);
      const observed = (await kernel.observe(owner, { sysctlKeys: ['net.ipv4.ip_forward'] })).state;
      expect(observed.addresses.map((a) => a.address).sort()).toEqual(['192.0.2.1/24', '2001:db8:c::1/64']);
      expect(observed.routes.map((r) => r.dst).sort()).toEqual(['198.18.10.0/24', '198.18.11.0/24', '2001:db8:d::/64']);
      expect(observed.neighbours.map((n) => n.address).sort()).toEqual(['192.0.2.9', '2001:db8:c::9']);
      const steady = await kernel.apply(owner, state);
      expect(steady.changes).toEqual([]);
      // reads only: one ip, bridge fdb (a vxlan link exists), sysctl
      expect(steady.processes).toBe(3);
    } finally {
      await ns.remove();
    }
  });
});

describe.skipIf(skip)(`wireguard-go sockets shared across namespaces${skipNote(skip)}`, () => {
  it("refuses to take over another namespace's live device socket, and clears a dead one", async () => {
    const [a, b] = [await freshNetns('wsa'), await freshNetns('wsb')];
    const owner = { name: 'wsock', linkPrefix: 'wsk', routeProtocol: 161 };
    const state = { links: [{ kind: 'wireguard' as const, name: 'wsk0' }] };
    try {
      const ka = new Iproute2Kernel({ kind: 'named', name: a.name }, { wireguard: 'userspace' });
      const kb = new Iproute2Kernel({ kind: 'named', name: b.name }, { wireguard: 'userspace' });
      await ka.apply(owner, state);
      const err = await kb.apply(owner, state).catch((e: unknown) => e as Error);
      expect((err as Error).message).toMatch(/^link wsk0: \/var\/run\/wireguard\/wsk0\.sock is in use by a wireguard-go of another network namespace/);
      // a's device still answers.
      expect((await execa('ip', ['netns', 'exec', a.name, 'wg', 'show', 'wsk0'])).exitCode).toBe(0);
      await ka.apply(owner, {});
      expect((await kb.apply(owner, state)).changes.map((c) => c.id)).toEqual(['link wsk0']);
      await kb.apply(owner, {});
    } finally {
      await a.remove();
      await b.remove();
    }
  });
});

describe.skipIf(skip)(`wireguard-go that dies${skipNote(skip)}`, () => {
  it('is started again, with its keys and peers, at the next apply', async () => {
    const { generateWireGuardKeyPair } = await import('./wgkeys.js');
    const ns = await freshNetns('wdie');
    const owner = { name: 'wdie', linkPrefix: 'wdi', routeProtocol: 162 };
    const peer = generateWireGuardKeyPair();
    const state = {
      links: [{ kind: 'wireguard' as const, name: 'wdi0' }],
      wireguard: [{ name: 'wdi0', privateKey: generateWireGuardKeyPair().privateKey, peers: [{ publicKey: peer.publicKey, allowedIPs: ['100.64.9.0/24'] }] }],
    };
    try {
      const kernel = new Iproute2Kernel({ kind: 'named', name: ns.name }, { wireguard: 'userspace' });
      await kernel.apply(owner, state);
      // The only process in this fresh namespace is the wireguard-go this test made the driver start.
      const pids = (await execa('ip', ['netns', 'pids', ns.name])).stdout.split('\n').filter(Boolean).map(Number);
      expect(pids).toHaveLength(1);
      process.kill(pids[0] as number, 'SIGKILL');
      for (let i = 0; i < 50 && (await execa('ip', ['-n', ns.name, 'link', 'show', 'wdi0'], { reject: false })).exitCode === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const healed = await kernel.apply(owner, state);
      expect(healed.changes.map((c) => `${c.op} ${c.id}`)).toEqual(['add link wdi0', 'set wireguard wdi0', `add wgpeer wdi0 ${peer.publicKey}`]);
      expect((await kernel.apply(owner, state)).changes).toEqual([]);
    } finally {
      await ns.remove();
    }
  });
});

describe.skipIf(skip)(`one read of WireGuard per reconcile${skipNote(skip)}`, () => {
  it("the apply's read reuses the plugin's read of a moment ago; later, or after a write, it reads again", async () => {
    const { generateWireGuardKeyPair } = await import('./wgkeys.js');
    const ns = await freshNetns('wrd');
    const owner = { name: 'wread', linkPrefix: 'wrd', routeProtocol: 164 };
    const names = new Set(['wrd0']);
    const state = (peers: string[]) => ({
      links: [{ kind: 'wireguard' as const, name: 'wrd0' }],
      wireguard: [{ name: 'wrd0', privateKey: generateWireGuardKeyPair().privateKey, peers: peers.map((publicKey, i) => ({ publicKey, allowedIPs: [`100.64.${String(i + 1)}.0/24`] })) }],
    });
    const [a, b] = [generateWireGuardKeyPair().publicKey, generateWireGuardKeyPair().publicKey];
    try {
      const kernel = new Iproute2Kernel({ kind: 'named', name: ns.name }, { wireguard: 'userspace' });
      const first = state([a]);
      await kernel.apply(owner, first);
      const reading = (await kernel.observe(owner)).processes; // nothing read since the write: wg runs
      await kernel.wireguardStatus(names); // the plugin's read
      expect((await kernel.observe(owner)).processes).toBe(reading - 1);
      await new Promise((r) => setTimeout(r, 300));
      expect((await kernel.observe(owner)).processes).toBe(reading);
      // A write between the two: the apply's execute forgets the read.
      await kernel.wireguardStatus(names);
      const changed = await kernel.apply(owner, { ...first, wireguard: [{ ...(first.wireguard[0] as (typeof first.wireguard)[number]), peers: [...(first.wireguard[0]?.peers ?? []), { publicKey: b, allowedIPs: ['100.64.9.0/24'] }] }] });
      expect(changed.changes.map((c) => `${c.op} ${c.kind}`)).toEqual(['add wgpeer']);
      const after = await kernel.observe(owner);
      expect(after.processes).toBe(reading);
      expect(after.state.wireguard[0]?.peers.map((p) => p.publicKey).sort()).toEqual([a, b].sort());
    } finally {
      await ns.remove();
    }
  });
});

describe.skipIf(skip)(`links moved into another namespace${skipNote(skip)}`, () => {
  it('creates the link here, moves it, configures it there, and tears it down there', async () => {
    const [host, pod] = [await freshNetns('mvh'), await freshNetns('mvp')];
    const owner = { name: 'mover', linkPrefix: 'wmv', routeProtocol: 163 };
    const state = (mtu: number) => ({
      links: [
        { kind: 'bridge' as const, name: 'wmvbr' },
        { kind: 'vxlan' as const, name: 'wmv0', vni: 77, local: '192.0.2.1', mtu, netns: pod.name },
      ],
    });
    const links = async (ns: string) => (JSON.parse((await execa('ip', ['-n', ns, '-j', '-d', 'link', 'show'])).stdout) as { ifname: string; mtu: number }[]).filter((l) => l.ifname.startsWith('wmv'));
    try {
      const kernel = new Iproute2Kernel({ kind: 'named', name: host.name });
      expect((await kernel.apply(owner, state(1400))).changes.map((c) => `${c.op} ${c.id}`)).toEqual(['add link wmvbr', 'add link wmv0']);
      expect((await links(host.name)).map((l) => l.ifname)).toEqual(['wmvbr']);
      expect(await links(pod.name)).toMatchObject([{ ifname: 'wmv0', mtu: 1400 }]);
      expect((await kernel.apply(owner, state(1400))).changes).toEqual([]);
      expect((await kernel.apply(owner, state(1380))).changes.map((c) => `${c.op} ${c.id}`)).toEqual(['set link wmv0']);
      expect(await links(pod.name)).toMatchObject([{ ifname: 'wmv0', mtu: 1380 }]);
      // A restarted driver finds the moved link again through the desired state.
      expect((await new Iproute2Kernel({ kind: 'named', name: host.name }).apply(owner, state(1380))).changes).toEqual([]);
      expect((await kernel.apply(owner, {})).changes.map((c) => `${c.op} ${c.id}`).sort()).toEqual(['delete link wmv0', 'delete link wmvbr']);
      expect(await links(pod.name)).toEqual([]);
      expect(await links(host.name)).toEqual([]);
    } finally {
      await host.remove();
      await pod.remove();
    }
  });
});
