import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeInfo } from '@weft/core';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { Iproute2Kernel } from '../core/src/kernel/iproute2.js';
import { VTEP_ANNOTATION, vtepMAC } from '../plugins/vxlan/src/facts.js';
import { desiredState, overhead, planOverlay } from '../plugins/vxlan/src/planner.js';
import { ROUTE_PROTOCOL } from '../plugins/vxlan/src/index.js';
import { freshNetns, netnsSkipReason, skipNote } from './support/capabilities.js';

// The overlay over an IPv6 underlay on this machine's kernel: two namespaces joined by a veth pair with only IPv6
// addresses, each configured by the plugin's planner through the real kernel driver. The IPv4 pod CIDRs cross in
// VXLAN over IPv6 (no IPv4 next hop exists); the IPv6 ones are routed directly (same subnet).
const skip = await netnsSkipReason();
const repo = fileURLToPath(new URL('../', import.meta.url));
const OWNER = { name: 'vxlan', linkPrefix: 'weft-vx', routeProtocol: ROUTE_PROTOCOL };

const node = (i: number): NodeInfo => ({
  name: `n${String(i)}`,
  internalAddresses: [`2001:db8:1::${String(i)}`],
  externalAddresses: [],
  podCIDRs: [`198.19.${String(i)}.0/24`, `fd19::${String(i)}:0/112`],
  labels: {},
  annotations: { [VTEP_ANNOTATION]: `${vtepMAC(`n${String(i)}`, 1)},2001:db8:1::${String(i)}` },
  ready: true,
  location: undefined,
  createdAt: i,
});

describe.skipIf(skip)(`weft plan with the vxlan plugin${skipNote(skip)}`, () => {
  it('prints the overlay it would make — entries before routes — and changes nothing', async () => {
    const ns = await freshNetns('vxplan');
    const dir = await mkdtemp(join(tmpdir(), 'weft-vxplan-'));
    try {
      for (const args of [['link', 'add', 'eth0', 'type', 'bridge'], ['address', 'add', '198.18.1.11/24', 'dev', 'eth0'], ['link', 'set', 'eth0', 'up']]) await execa('ip', ['-n', ns.name, ...args]);
      const vtep = (name: string, ip: string) => `{${VTEP_ANNOTATION}: "${vtepMAC(name, 1)},${ip}"}`;
      const config = join(dir, 'weft.yaml');
      await writeFile(
        config,
        [
          `node: {name: n1, stateDir: ${join(dir, 'state')}}`,
          `kernel: {netns: ${ns.name}}`,
          'cluster: {podNetworks: [198.19.0.0/16]}',
          'discovery:',
          '  static:',
          '    nodes:',
          '      - {name: n1, internalAddresses: [198.18.1.11], podCIDRs: [198.19.1.0/24]}',
          `      - {name: n2, internalAddresses: [198.18.1.12], podCIDRs: [198.19.2.0/24], annotations: ${vtep('n2', '198.18.1.12')}}`,
          `      - {name: n3, internalAddresses: [198.18.2.13], podCIDRs: [198.19.3.0/24], annotations: ${vtep('n3', '198.18.2.13')}}`,
          'http: {listen: null}',
          'plugins:',
          '  vxlan: {}',
          '',
        ].join('\n'),
      );
      const kernelState = async () => {
        const links = JSON.parse((await execa('ip', ['-n', ns.name, '-j', 'link', 'show'])).stdout) as { ifname: string }[];
        const routes = (await execa('ip', ['-n', ns.name, 'route', 'show', 'table', 'all'])).stdout;
        return `${links.map((l) => l.ifname).join(',')}\n${routes}`;
      };
      const before = await kernelState();
      const r = await execa(process.execPath, [join(repo, 'distribution/bin/weft.js'), 'plan', '--config', config], { reject: false });
      expect(r.exitCode, r.stderr).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines[0]).toMatch(/^vxlan: \d+ changes$/);
      for (const line of ['  + link weft-vx0', '  + address weft-vx0 198.19.1.0/32', '  + neighbour weft-vx0 198.19.3.0', `  + fdb weft-vx0 ${vtepMAC('n3', 1)} dst 198.18.2.13`, '  + route 198.19.2.0/24 table 254 metric 0', '  + route 198.19.3.0/24 table 254 metric 0']) {
        expect(lines, r.stdout).toContain(line);
      }
      expect(lines.indexOf('  + route 198.19.3.0/24 table 254 metric 0')).toBeGreaterThan(lines.indexOf(`  + fdb weft-vx0 ${vtepMAC('n3', 1)} dst 198.18.2.13`));
      expect(await kernelState()).toBe(before);
    } finally {
      await ns.remove();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skip)(`the vxlan overlay over an IPv6 underlay${skipNote(skip)}`, () => {
  it('IPv4 pods reach each other in VXLAN over IPv6, IPv6 pods directly; MTU 1500 − 70; a second apply changes nothing', async () => {
    const [a, b] = [await freshNetns('vx6a'), await freshNetns('vx6b')];
    try {
      await execa('ip', ['-n', a.name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.name]);
      for (const [ns, i] of [[a, 1], [b, 2]] as const) {
        await execa('ip', ['-n', ns.name, 'address', 'add', `2001:db8:1::${String(i)}/64`, 'dev', 'eth0', 'nodad']);
        await execa('ip', ['-n', ns.name, 'link', 'set', 'eth0', 'up']);
      }
      const nodes = [node(1), node(2)];
      const kernels = [new Iproute2Kernel({ kind: 'named', name: a.name }), new Iproute2Kernel({ kind: 'named', name: b.name })];
      for (const [i, kernel] of kernels.entries()) {
        const self = nodes[i] as NodeInfo;
        const plan = planOverlay({
          nodes,
          self: { name: self.name, mac: vtepMAC(self.name, 1), underlay: self.internalAddresses[0] as string, location: undefined, podCIDRs: self.podCIDRs, networks: ['2001:db8:1::/64'] },
          config: { directRouting: true },
          podNetworks: ['198.19.0.0/16', 'fd19::/48'],
        });
        expect(plan.peers.map((p) => [p.direct, p.encapsulated])).toEqual([[[`fd19::${String(2 - i)}:0/112`], [`198.19.${String(2 - i)}.0/24`]]]);
        const state = desiredState(plan, [], { interface: 'weft-vx0', vni: 1, port: 4789, mtu: 1500 - overhead(self.internalAddresses[0] as string), segmentMtu: 1430, segmentLocal: undefined, bridges: new Set() });
        expect((await kernel.apply(OWNER, state)).changes.length).toBeGreaterThan(0);
        expect((await kernel.apply(OWNER, state)).changes).toEqual([]);
      }
      const link = (await execa('ip', ['-n', a.name, '-d', 'link', 'show', 'weft-vx0'])).stdout;
      expect(link).toMatch(/mtu 1430/);
      expect(link).toMatch(/vxlan id 1 local 2001:db8:1::1/);
      const inA = (...cmd: string[]) => execa('ip', ['netns', 'exec', a.name, ...cmd], { reject: false, timeout: 15_000 });
      // IPv4 through the VTEP, IPv6 over the underlay.
      expect((await execa('ip', ['-n', a.name, 'route', 'get', '198.19.2.10'])).stdout).toMatch(/dev weft-vx0/);
      expect((await execa('ip', ['-n', a.name, '-6', 'route', 'get', 'fd19::2:0'])).stdout).toMatch(/via 2001:db8:1::2 dev eth0/);
      const v4 = await inA('ping', '-c', '2', '-W', '2', '198.19.2.0');
      expect(v4.exitCode, v4.stdout).toBe(0);
      const v6 = await inA('ping', '-6', '-c', '2', '-W', '2', 'fd19::2:0');
      expect(v6.exitCode, v6.stdout).toBe(0);
      // A full-size IPv4 packet in the VTEP's MTU crosses without fragmenting the underlay's.
      const big = await inA('ping', '-c', '1', '-W', '2', '-M', 'do', '-s', String(1430 - 28), '198.19.2.0');
      expect(big.exitCode, big.stdout + big.stderr).toBe(0);
    } finally {
      await a.remove();
      await b.remove();
    }
  });
});
