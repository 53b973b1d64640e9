import { describe, expect, it } from 'vitest';
import { netnsSkipReason, skipNote } from '../../../test/support/capabilities.js';
import { formatDoctor, probeMachine } from './capabilities.js';

const skip = await netnsSkipReason();

describe.skipIf(skip)(`weft doctor on this machine${skipNote(skip)}`, () => {
  it('reports every link kind, MPLS, nftables and the tools, with a fix for each thing missing', async () => {
    const report = await probeMachine();
    const names = report.checks.map((c) => c.name);
    for (const n of ['tool ip', 'tool wg', 'tool nft', 'network namespaces', 'link bridge', 'link veth', 'link vxlan', 'link dummy', 'link gre', 'link ip6gre', 'link ipip', 'link wireguard', 'mpls', 'nftables']) {
      expect(names).toContain(n);
    }
    for (const c of report.checks.filter((x) => !x.ok)) expect(c.fix, c.name).toBeTruthy();
    // This host's kernel has no MPLS (the VM's has: vm-kernel.vm.test.ts): the check names the module to load.
    const mpls = report.checks.find((c) => c.name === 'mpls');
    if (mpls?.ok === false) expect(`${mpls.detail} — ${mpls.fix ?? ''}`).toMatch(/mpls_router.*modprobe mpls_router mpls_iptunnel|mpls_iptunnel.*modprobe mpls_iptunnel/);
    expect(report.checks.filter((c) => ['link bridge', 'link veth', 'link vxlan', 'network namespaces'].includes(c.name)).every((c) => c.ok)).toBe(true);
    expect(formatDoctor(report)).toMatch(/^kernel \S+\n/);
  });

  it("what a plugin requires at start probes only that: WireGuard's question touches no other link kind, MPLS or nftables", async () => {
    const report = await probeMachine(['wireguard']);
    const names = report.checks.map((c) => c.name);
    expect(names.filter((n) => !n.startsWith('tool '))).toEqual(['network namespaces', 'link wireguard']);
    // Judged as in the whole report (where the kernel has no module, wireguard-go stands in).
    expect(report.checks.find((c) => c.name === 'link wireguard')?.ok).toBe((await probeMachine()).checks.find((c) => c.name === 'link wireguard')?.ok);
  });
});
