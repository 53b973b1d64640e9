import { describe, expect, it } from 'vitest';
import { type ContractHarness, kernelContract, nftablesContract, wireGuardContract } from './contract.testsuite.js';
import { applyDesired } from './driver.js';
import { MemoryKernel } from './memory.js';
import { checkOwner, KernelInputError, ownershipConflicts } from './normalize.js';

function memoryHarness(): ContractHarness {
  const kernel = new MemoryKernel();
  const foreign = {
    links: [{ kind: 'bridge' as const, name: 'fx0' }],
    addresses: [{ dev: 'fx0', address: '198.51.100.1/24' }],
    routes: [{ dst: '198.51.100.128/25', dev: 'fx0' }],
    rules: [{ priority: 900, table: 99 }],
  };
  return {
    backend: kernel,
    addForeign: async () => kernel.addForeign(foreign),
    foreignIntact: async () => {
      const s = kernel.snapshot();
      return (
        s.links.some((l) => l.name === 'fx0') &&
        s.addresses.some((a) => a.address === '198.51.100.1/24') &&
        s.routes.some((r) => r.dst === '198.51.100.128/25' && r.proto === 4) &&
        s.rules.some((r) => r.priority === 900)
      );
    },
    commands: () => 0,
    commandLines: () => [],
    close: async () => undefined,
  };
}

kernelContract('in-memory kernel', async () => memoryHarness());
wireGuardContract('in-memory kernel', async () => memoryHarness());
nftablesContract('in-memory kernel', async () => memoryHarness());

describe('MemoryKernel', () => {
  it('deletes what a link takes with it, as the kernel does, and a later apply restores all of it', async () => {
    const kernel = new MemoryKernel();
    const owner = { name: 't', linkPrefix: 't', routeProtocol: 150 };
    const desired = { links: [{ kind: 'bridge' as const, name: 'tb0' }], addresses: [{ dev: 'tb0', address: '192.0.2.1/24' }], routes: [{ dst: '198.18.0.0/24', dev: 'tb0' }] };
    await kernel.apply(owner, desired);
    const link = (await kernel.observe(owner)).state.links[0];
    await kernel.execute(owner, [{ op: 'delete', kind: 'link', id: 'drift', object: link as never }]);
    expect((await kernel.observe(owner)).state).toMatchObject({ links: [], addresses: [], routes: [] });
    const r = await kernel.apply(owner, desired);
    expect(r.changes.map((c) => `${c.op} ${c.id}`)).toEqual(['add link tb0', 'add address tb0 192.0.2.1/24', 'add route 198.18.0.0/24 table 254 metric 0']);
  });

  it('fails an injected change with the kernel message and keeps what came before', async () => {
    const kernel = new MemoryKernel();
    const owner = { name: 't', linkPrefix: 't', routeProtocol: 150 };
    kernel.failOnce('route 198.18.1.0/24 table 254 metric 0', 'RTNETLINK answers: Network is unreachable');
    const err = await kernel
      .apply(owner, { links: [{ kind: 'bridge', name: 'tb0' }], routes: [{ dst: '198.18.1.0/24', dev: 'tb0' }] })
      .catch((e: unknown) => e as { message: string; applied: { id: string }[] });
    expect(err).toMatchObject({ code: 'WEFT_KERNEL_APPLY', message: 'route 198.18.1.0/24 table 254 metric 0: RTNETLINK answers: Network is unreachable' });
    expect((err as { applied: { id: string }[] }).applied.map((c) => c.id)).toEqual(['link tb0']);
    const again = await kernel.apply(owner, { links: [{ kind: 'bridge', name: 'tb0' }], routes: [{ dst: '198.18.1.0/24', dev: 'tb0' }] });
    expect(again.changes.map((c) => c.id)).toEqual(['route 198.18.1.0/24 table 254 metric 0']);
  });
});

describe('a desired state asked for again', () => {
  it('is normalised once, and any change to it, however small, is seen', async () => {
    const kernel = new MemoryKernel();
    const owner = { name: 't', linkPrefix: 't', routeProtocol: 150 };
    const a = { links: [{ kind: 'bridge' as const, name: 'tb0', mtu: 1400 }], routes: [{ dst: '198.18.2.0/24', dev: 'tb0' }] };
    const b = { links: [{ kind: 'bridge' as const, name: 'tb0', mtu: 1401 }], routes: [{ dst: '198.18.2.0/24', dev: 'tb0' }] };
    expect((await kernel.apply(owner, a)).changes).toHaveLength(2);
    expect((await kernel.apply(owner, structuredClone(a))).changes).toEqual([]);
    expect((await kernel.apply(owner, b)).changes.map((c) => `${c.op} ${c.id}`)).toEqual(['set link tb0']);
    expect((await kernel.apply(owner, a)).changes.map((c) => `${c.op} ${c.id}`)).toEqual(['set link tb0']);
    // Another owner asking for the same objects is checked against its own ownership.
    await expect(kernel.apply({ ...owner, name: 'u', linkPrefix: 'u' }, a)).rejects.toThrow(/tb0/);
    // Invalid input is refused every time, not once.
    const bad = { routes: [{ dst: '198.18.3.1/24', dev: 'tb0' }] };
    await expect(kernel.apply(owner, bad)).rejects.toThrow(/host bits|198\.18\.3\.1/);
    await expect(kernel.apply(owner, bad)).rejects.toThrow(/host bits|198\.18\.3\.1/);
  });
});

describe('links moved into another namespace (memory)', () => {
  it('keeps them under the owner, and refuses addresses on them here', async () => {
    const kernel = new MemoryKernel();
    const owner = { name: 't', linkPrefix: 't', routeProtocol: 150 };
    const link = { kind: 'vxlan' as const, name: 'tv0', vni: 5, netns: 'pod-1' };
    const state = { links: [link] };
    expect((await kernel.apply(owner, state)).changes.map((c) => c.id)).toEqual(['link tv0']);
    expect((await kernel.apply(owner, state)).changes).toEqual([]);
    expect((await kernel.apply(owner, { links: [{ ...link, netns: 'pod-2' }] })).changes.map((c) => `${c.op} ${c.id}`)).toEqual(['delete link tv0', 'add link tv0']);
    await expect(kernel.apply(owner, { ...state, addresses: [{ dev: 'tv0', address: '192.0.2.1/24' }] })).rejects.toThrow(
      'link "tv0" lives in netns pod-1: a driver bound to that namespace manages what is on it',
    );
  });
});

describe('an owner without a link prefix (a plugin that only routes)', () => {
  const owner = { name: 'router', routeProtocol: 170 };
  it('applies its routes over links it does not own, and owns no link', async () => {
    const kernel = new MemoryKernel();
    kernel.addForeign({ links: [{ kind: 'dummy', name: 'eth0' }], addresses: [{ dev: 'eth0', address: '192.0.2.1/24' }] });
    checkOwner(owner);
    const first = await applyDesired(kernel, owner, { routes: [{ dst: '198.18.40.0/24', via: '192.0.2.7', dev: 'eth0' }] });
    expect(first.changes.map((c) => `${c.op} ${c.id}`)).toEqual(['add route 198.18.40.0/24 table 254 metric 0']);
    expect((await applyDesired(kernel, owner, { routes: [{ dst: '198.18.40.0/24', via: '192.0.2.7', dev: 'eth0' }] })).changes).toEqual([]);
    const err = await applyDesired(kernel, owner, { links: [{ kind: 'bridge', name: 'br9' }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelInputError);
    expect((err as KernelInputError).problems).toEqual(['link "br9": name "br9": the owner declares no link prefix, so it owns no links']);
    // Its teardown leaves the foreign link and address alone.
    await applyDesired(kernel, owner, {});
    expect(kernel.snapshot().links.map((l) => l.name)).toContain('eth0');
    expect(kernel.snapshot().routes.filter((r) => r.dst === '198.18.40.0/24')).toEqual([]);
  });

  it('overlaps no other owner by links; by route protocol it still can', () => {
    expect(ownershipConflicts([owner, { name: 'wireguard', linkPrefix: 'weft-wg', routeProtocol: 151 }])).toEqual([]);
    expect(ownershipConflicts([owner, { name: 'other', routeProtocol: 170 }]).map((c) => c.message)).toEqual(['route protocol 170 is also plugin "router"\'s']);
  });
});
