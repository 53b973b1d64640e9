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

  it("answers a plugin's WireGuard question from /sys/module where it tells, else with the throwaway link its first device asks for anyway", async () => {
    const ns = await freshNetns('kq');
    try {
      const counting = countingRunner();
      const kernel = new Iproute2Kernel({ kind: 'named', name: ns.name }, { runner: counting.runner });
      const before = (await execa('ip', ['netns', 'list'])).stdout;
      const report = await kernel.probe(['wireguard']);
      expect(report.checks.map((c) => c.name)).toEqual(['link wireguard']);
      expect(report.checks[0]?.ok).toBe(true);
      expect(report.checks[0]?.detail).toMatch(kernelHasWireGuard() ? /^supported$/ : /^no kernel module; weft runs wireguard-go \(userspace, \/\S+\/wireguard-go\)$/);
      // No process where /sys tells (the module is loaded or built in, or this kernel loads no modules at all);
      // otherwise one `ip link add` in the node's own namespace (and its `del` where the kernel made the link).
      const told = existsSync('/sys/module/wireguard') || !existsSync('/proc/sys/kernel/modprobe');
      const add = `ip -n ${ns.name} link add P type wireguard`;
      const probed = kernelHasWireGuard() ? [add, `ip -n ${ns.name} link del P`] : [add];
      expect(counting.lines().map((l) => l.replace(/weftwgp\d+/, 'P'))).toEqual(told ? [] : probed);
      expect((await execa('ip', ['netns', 'list'])).stdout).toBe(before);
      // The driver's own question (which implementation a new device gets) is then answered without a process.
      await kernel.wireguardImplementation();
      await kernel.probe(['wireguard']);
      expect(counting.count()).toBe(told ? 0 : probed.length);
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
      // an owner looks for what a past run left); writes: ip -batch (links, addresses, neighbours), bridge -batch
      // (FDB), ip -batch (routes and rules, after the FDB entries they may need), ip -6 -batch (the IPv6 rule),
      // sysctl -w.
      expect(cold.processes).toBe(existsSync('/proc/sys/net/mpls') ? 10 : 9);
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

  it("interfaces() asked for an owner is that owner's read: the apply right after reads no more, a write in between makes it read again", async () => {
    const ns = await freshNetns('ki');
    try {
      const owner = { ...OWNER, name: 'contract-shared', rulePriorities: undefined };
      const state = { ...contractState(), rules: [] };
      const counting = countingRunner();
      const kernel = new Iproute2Kernel({ kind: 'named', name: ns.name }, { runner: counting.runner });
      const reads = () => counting.lines().filter((l) => l.includes('-json -details -batch')).length;
      // The owner's first read: its nftables listing (and MPLS routes) begin beside interfaces(), not after it.
      const before = reads();
      const interfaces = await kernel.interfaces(owner);
      expect(interfaces.map((i) => i.name)).toContain('lo');
      expect(reads()).toBe(before + 1);
      const cold = await kernel.apply(owner, state);
      expect(cold.changes.length).toBeGreaterThan(0);
      expect(reads()).toBe(before + 1);
      // After the write, the owner's addresses show in a fresh interfaces() (a read, not the one from before).
      const after = await kernel.interfaces(owner);
      expect(reads()).toBe(before + 2);
      expect(after.find((i) => i.name === 'wcbr0')?.addresses).toContain('192.0.2.1/24');
      expect((await kernel.apply(owner, state)).changes).toEqual([]);
      expect(reads()).toBe(before + 2);
      // Not taken twice: the next apply reads again.
      await kernel.apply(owner, state);
      expect(reads()).toBe(before + 3);
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

describe.skipIf(skip)(`wireguard-go through its control socket${skipNote(skip)}`, () => {
  it('reads and writes a device without starting wg, and reads it as wg show all dump does', async () => {
    const { generateWireGuardKeyPair } = await import('./wgkeys.js');
    const ns = await freshNetns('wrd');
    const owner = { name: 'wread', linkPrefix: 'wrd', routeProtocol: 164 };
    const names = new Set(['wrd0']);
    const [a, b, psk] = [generateWireGuardKeyPair().publicKey, generateWireGuardKeyPair().publicKey, generateWireGuardKeyPair().privateKey];
    const device = {
      name: 'wrd0',
      privateKey: generateWireGuardKeyPair().privateKey,
      listenPort: 51899,
      fwmark: 0x51,
      peers: [{ publicKey: a, allowedIPs: ['100.64.1.0/24', 'fd00:64::1/128'], endpoint: '192.0.2.7:51820', presharedKey: psk, persistentKeepalive: 25 }],
    };
    const state = (d: typeof device) => ({ links: [{ kind: 'wireguard' as const, name: 'wrd0' }], wireguard: [d] });
    try {
      const counting = countingRunner();
      const kernel = new Iproute2Kernel({ kind: 'named', name: ns.name }, { wireguard: 'userspace', runner: counting.runner });
      await kernel.apply(owner, state(device));
      expect((await kernel.apply(owner, state(device))).changes).toEqual([]);
      // A peer added, one field of the other changed, then removed: each read back as written.
      const second = { ...device, peers: [{ ...device.peers[0], persistentKeepalive: 0, presharedKey: undefined }, { publicKey: b, allowedIPs: ['100.64.9.0/24'] }] } as unknown as typeof device;
      expect((await kernel.apply(owner, state(second))).changes.map((c) => `${c.op} ${c.kind}`).sort()).toEqual(['add wgpeer', 'replace wgpeer']);
      expect((await kernel.apply(owner, state(second))).changes).toEqual([]);
      const status = await kernel.wireguardStatus(names);
      expect(status[0]?.peers.map((p) => [p.publicKey, p.persistentKeepalive])).toEqual([[a, 0], [b, 0]].sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1)));
      // wireguard-go was started once; wg never ran.
      expect(counting.lines().filter((l) => /(^| )wg( |$)/.test(l))).toEqual([]);
      // What the driver reads is what wg prints.
      const wg = (await execa('ip', ['netns', 'exec', ns.name, 'wg', 'show', 'all', 'dump'])).stdout.split('\n').filter((l) => l.startsWith('wrd0\t'));
      const { parseWgDump } = await import('./wireguard.js');
      expect((await kernel.observe(owner)).state.wireguard).toEqual(parseWgDump(wg.join('\n'), names));
      expect(status).toEqual((await import('./wireguard.js')).parseWgStatus(wg.join('\n'), names));
      expect((await kernel.apply(owner, state({ ...device, peers: [] }))).changes.map((c) => `${c.op} ${c.kind}`).sort()).toEqual(['delete wgpeer', 'delete wgpeer']);
      expect((await kernel.wireguardStatus(names))[0]?.peers).toEqual([]);
    } finally {
      await ns.remove();
    }
  });
});

describe.skipIf(skip)(`a steady read through ip monitor${skipNote(skip)}`, () => {
  it('reuses a read while the kernel reports nothing, reads again after a change, a write of its own or the monitor dying', async () => {
    const { MONITOR_SETTLE_MS } = await import('./monitor.js');
    const ns = await freshNetns('kmo');
    const owner = { name: 'kmon', linkPrefix: 'wkm', routeProtocol: 165 };
    const state = {
      links: [{ kind: 'bridge' as const, name: 'wkm0', up: true }],
      addresses: [{ dev: 'wkm0', address: '198.18.61.1/24' }],
      routes: [{ dst: '198.18.62.0/24', via: '198.18.61.2', dev: 'wkm0' }],
    };
    const ip = (...args: string[]) => execa('ip', ['-n', ns.name, ...args]);
    const counting = countingRunner();
    const kernel = new Iproute2Kernel({ kind: 'named', name: ns.name }, { runner: counting.runner, monitor: true });
    const until = async (what: () => Promise<boolean>) => {
      for (let i = 0; i < 100 && !(await what()); i++) await new Promise((r) => setTimeout(r, 20));
      return what();
    };
    try {
      await kernel.apply(owner, state);
      await new Promise((r) => setTimeout(r, MONITOR_SETTLE_MS + 100));
      expect((await kernel.observe(owner)).processes).toBe(1); // the first read after settling
      const before = counting.count();
      const steady = await kernel.apply(owner, state);
      expect(steady.changes).toEqual([]);
      expect(steady.processes).toBe(0);
      expect(counting.count()).toBe(before);
      // ARP comes and goes on its own: not a change of anything the driver owns.
      await ip('neigh', 'add', '198.18.61.9', 'lladdr', '02:00:00:00:00:09', 'dev', 'wkm0', 'nud', 'reachable');
      await new Promise((r) => setTimeout(r, 200));
      expect((await kernel.observe(owner)).processes).toBe(0);
      // A route deleted behind its back: seen at the next read, and put back.
      await ip('route', 'del', '198.18.62.0/24', 'proto', '165');
      expect(await until(async () => !(await kernel.observe(owner)).state.routes.some((r) => r.dst === '198.18.62.0/24'))).toBe(true);
      const healed = await kernel.apply(owner, state);
      expect(healed.changes.map((c) => `${c.op} ${c.id}`)).toEqual(['add route 198.18.62.0/24 table 254 metric 0']);
      // Its own write: read again at once, and the route is there.
      const after = await kernel.observe(owner);
      expect(after.processes).toBe(1);
      expect(after.state.routes.map((r) => r.dst)).toEqual(['198.18.62.0/24']);
      // An MTU changed by hand: a link event.
      await ip('link', 'set', 'wkm0', 'mtu', '1400');
      expect(await until(async () => (await kernel.interfaces()).find((i) => i.name === 'wkm0')?.mtu === 1400)).toBe(true);
      // The monitor dies: nothing is reused until one runs again.
      const monitor = (kernel as unknown as { monitor: { pid: number | undefined } }).monitor;
      expect(monitor.pid).toBeGreaterThan(0);
      process.kill(monitor.pid as number, 'SIGKILL');
      expect(await until(async () => monitor.pid === undefined)).toBe(true);
      expect((await kernel.observe(owner)).processes).toBe(1);
      expect((await kernel.observe(owner)).processes).toBe(1);
    } finally {
      const monitor = (kernel as unknown as { monitor: { pid: number | undefined } }).monitor;
      const pid = monitor.pid;
      kernel.close();
      if (pid !== undefined) expect(await until(async () => !existsSync(`/proc/${String(pid)}`) || readFileSync(`/proc/${String(pid)}/stat`, 'utf8').includes(') Z'))).toBe(true);
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
