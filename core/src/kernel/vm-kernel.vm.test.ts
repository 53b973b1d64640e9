/**
 * The kernel driver on a stock Debian kernel, inside the VM (tools/vm/vm-run; started by test/vm.e2e.test.ts): the
 * link kinds, MPLS and kernel WireGuard that the host kernel lacks, plus the whole contract on a second kernel.
 */
import { describe, expect, it } from 'vitest';
import { kernelContract, nftablesContract, wireGuardContract } from './contract.testsuite.js';
import { applyDesired } from './driver.js';
import { netnsHarness } from './netns-harness.testsuite.js';
import type { DesiredState, KernelOwner } from './model.js';

const vmHarness = (label: string, wireguard: 'kernel' | 'auto' = 'auto') => netnsHarness(label, { wireguard });

kernelContract('iproute2 on the VM kernel', () => vmHarness('vk'));
wireGuardContract('iproute2 on the VM kernel (kernel WireGuard)', () => vmHarness('vw', 'kernel'));
nftablesContract('iproute2 on the VM kernel', () => vmHarness('vn'));

const TUNNELS: KernelOwner = { name: 'tunnels', linkPrefix: 'wt', routeProtocol: 154 };
const tunnelState = (greKey: number): DesiredState => ({
  links: [
    { kind: 'dummy', name: 'wtd0', mtu: 1500 },
    { kind: 'gre', name: 'wtg0', remote: '198.51.100.2', local: '192.0.2.1', key: greKey, ttl: 64 },
    { kind: 'ip6gre', name: 'wtg6', remote: '2001:db8::2', local: '2001:db8::1', key: 9 },
    { kind: 'ipip', name: 'wti0', remote: '198.51.100.3' },
  ],
  addresses: [{ dev: 'wtd0', address: '192.0.2.1/24' }],
  routes: [{ dst: '198.18.30.0/24', via: '192.0.2.2', dev: 'wtd0', mpls: [100, 200] }],
  mplsRoutes: [
    { label: 100, dev: 'lo' },
    { label: 101, as: [200, 300], via: '192.0.2.2', dev: 'wtd0' },
    // A swap without a device (the mpls-lwtunnel plugin's, toward a pod): the kernel picks wtd0 by the next hop, and
    // the next apply must take that for the desired one (the steady apply below writes nothing).
    { label: 102, as: [100], via: '192.0.2.3' },
  ],
  sysctls: [
    { key: 'net.mpls.platform_labels', value: '1000' },
    { key: 'net.mpls.conf.wtd0.input', value: '1' },
  ],
});

describe('tunnels, dummy and MPLS on the VM kernel', () => {
  it('creates, keeps steady, recreates on a changed GRE key, heals an MPLS route, and tears down', async () => {
    const h = await vmHarness('vt');
    try {
      const summary = async (state: DesiredState) => (await applyDesired(h.backend, TUNNELS, state)).changes.map((c) => `${c.op} ${c.id}`);
      expect(await summary(tunnelState(7))).toEqual([
        'add link wtd0',
        'add link wtg0',
        'add link wtg6',
        'add link wti0',
        'add address wtd0 192.0.2.1/24',
        'add route 198.18.30.0/24 table 254 metric 0',
        'add mpls route 100',
        'add mpls route 101',
        'add mpls route 102',
        'set sysctl net.mpls.platform_labels',
        'set sysctl net.mpls.conf.wtd0.input',
      ]);
      expect(await summary(tunnelState(7))).toEqual([]);
      expect(await summary(tunnelState(8))).toEqual(['delete link wtg0', 'add link wtg0']);
      const observed = (await h.backend.observe(TUNNELS, { mpls: true })).state;
      expect(observed.routes[0]).toMatchObject({ dst: '198.18.30.0/24', mpls: [100, 200], via: '192.0.2.2' });
      expect(observed.mplsRoutes).toEqual([
        { label: 100, as: [], dev: 'lo' },
        { label: 101, as: [200, 300], dev: 'wtd0', via: '192.0.2.2' },
        { label: 102, as: [100], dev: 'wtd0', via: '192.0.2.3' },
      ]);
      await h.backend.execute(TUNNELS, [{ op: 'delete', kind: 'mpls', id: 'drift', object: observed.mplsRoutes[0] as never }]);
      expect(await summary(tunnelState(8))).toEqual(['add mpls route 100']);
      const torn = await summary({});
      expect(torn.every((c) => c.startsWith('delete '))).toBe(true);
      expect(await summary({})).toEqual([]);
    } finally {
      await h.close();
    }
  });
});

describe('GRE in metadata mode and lightweight IP tunnels on the VM kernel', () => {
  it('one external GRE device (and ip6gre) carries routes that each say where the tunnel goes; read back, steady, changed in place, torn down', async () => {
    const h = await vmHarness('vx');
    try {
      const state = (dst: string): DesiredState => ({
        links: [
          { kind: 'gre', name: 'wtx0', external: true },
          { kind: 'ip6gre', name: 'wtx6', external: true },
        ],
        routes: [
          { dst: '198.51.100.80/32', table: 300, dev: 'wtx0', ipEncap: { dst } },
          { dst: '198.51.100.80/32', table: 301, dev: 'wtx0', ipEncap: { dst: '192.0.2.8', ttl: 32 } },
          { dst: '2001:db8:80::1/128', table: 300, dev: 'wtx6', ipEncap: { dst: '2001:db8::7' } },
        ],
      });
      const summary = async (s: DesiredState) => (await applyDesired(h.backend, TUNNELS, s)).changes.map((c) => `${c.op} ${c.id}`);
      expect(await summary(state('192.0.2.7'))).toEqual([
        'add link wtx0',
        'add link wtx6',
        'add route 198.51.100.80/32 table 300 metric 0',
        'add route 198.51.100.80/32 table 301 metric 0',
        'add route 2001:db8:80::1/128 table 300 metric 1024',
      ]);
      expect(await summary(state('192.0.2.7'))).toEqual([]);
      const observed = (await h.backend.observe(TUNNELS)).state;
      expect(observed.links.map((l) => [l.name, l.kind, (l as { external?: boolean }).external])).toEqual([['wtx0', 'gre', true], ['wtx6', 'ip6gre', true]]);
      expect(observed.routes.map((r) => [r.dst, r.table, r.ipEncap])).toEqual([
        ['198.51.100.80/32', 300, { dst: '192.0.2.7' }],
        ['198.51.100.80/32', 301, { dst: '192.0.2.8', ttl: 32 }],
        ['2001:db8:80::1/128', 300, { dst: '2001:db8::7' }],
      ]);
      // The endpoint moves: the route is replaced, the device stays.
      expect(await summary(state('192.0.2.9'))).toEqual(['replace route 198.51.100.80/32 table 300 metric 0']);
      expect(await summary({})).toEqual(['delete route 198.51.100.80/32 table 300 metric 0', 'delete route 198.51.100.80/32 table 301 metric 0', 'delete route 2001:db8:80::1/128 table 300 metric 1024', 'delete link wtx0', 'delete link wtx6']);
    } finally {
      await h.close();
    }
  });
});

describe('weft doctor on the VM kernel', () => {
  it('finds every link kind, MPLS and kernel WireGuard', async () => {
    const { probeMachine } = await import('./capabilities.js');
    const report = await probeMachine();
    const missing = report.checks.filter((c) => !c.ok && !c.name.startsWith('tool ')).map((c) => `${c.name}: ${c.detail}`);
    expect(missing).toEqual([]);
    expect(report.checks.find((c) => c.name === 'link wireguard')?.detail).toBe('supported');
    // Both MPLS modules: label routes (mpls_router) and routes that push a label (mpls_iptunnel, tried for real).
    expect(report.checks.find((c) => c.name === 'mpls')?.detail).toMatch(/^net\.mpls\.platform_labels = \d+; encap mpls routes work$/);
  });

  it("answers a plugin's WireGuard question from the kernel", async () => {
    const h = await vmHarness('vq');
    try {
      expect((await h.backend.probe(['wireguard'])).checks).toEqual([{ name: 'link wireguard', ok: true, detail: 'supported' }]);
    } finally {
      await h.close();
    }
  });
});
