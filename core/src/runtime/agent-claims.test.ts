import { describe, expect, it } from 'vitest';
import type { ClusterView } from '../api/cluster.js';
import { definePlugin } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { startTestAgent } from '../testing/index.js';

/** A plugin that keeps the last view it reconciled with. */
function watcher(seen: ClusterView[]) {
  return definePlugin({
    name: 'watcher',
    apiVersion: '2',
    description: 'records views',
    config: z.strictObject({}),
    setup: () => ({
      reconcile: async ({ view }) => {
        seen.push(view);
        await Promise.resolve();
      },
    }),
  });
}

describe("the agent checks every node's claims before plugins see them", () => {
  it('a hostile node: plugins never see its refused claims; the log, /claims and weft_claims_refused say what and why', async () => {
    const seen: ClusterView[] = [];
    const t = await startTestAgent({
      plugins: [watcher(seen)],
      cluster: { podNetworks: ['198.19.0.0/16'], underlayNetworks: ['198.18.0.0/16'] },
      nodes: [
        { name: 'n1', internalAddresses: ['198.18.1.11'], podCIDRs: ['198.19.1.0/24'] },
        { name: 'n2', internalAddresses: ['198.18.1.12'], podCIDRs: ['198.19.2.0/24'] },
      ],
    });
    await t.waitForReconcile('watcher');
    // A node that joins later, named to sort first, claims n2's pod CIDR, the underlay and a default route.
    t.cluster.setNode({ name: 'a-evil', internalAddresses: ['198.18.1.66'], podCIDRs: ['198.19.2.0/24', '198.18.1.0/25', '::/0'] });
    await t.waitForReconcile('watcher');
    const view = seen.at(-1) as ClusterView;
    expect(view.nodes.map((n) => [n.name, n.podCIDRs])).toEqual([
      ['a-evil', []],
      ['n1', ['198.19.1.0/24']],
      ['n2', ['198.19.2.0/24']],
    ]);
    const claims = (await (await t.fetch('/claims')).json()) as { addressPlan: unknown; problems: { node: string; value: string; outcome: string; reason: string }[] };
    expect(claims.addressPlan).toEqual({ podNetworks: ['198.19.0.0/16'], serviceNetworks: [], underlayNetworks: ['198.18.0.0/16'] });
    expect(claims.problems.map((p) => `${p.node} ${p.value} ${p.outcome}: ${p.reason}`)).toEqual([
      'a-evil 198.18.1.0/25 refused: outside the cluster\'s pod networks (198.19.0.0/16)',
      "a-evil 198.19.2.0/24 refused: overlaps n2's 198.19.2.0/24, which the cluster knew first",
      'a-evil ::/0 refused: bigger than a node may claim (cluster.largestPodCIDR: /48)',
      'n2 198.19.2.0/24 contested: also claimed by a-evil (refused there: the cluster knew n2 first)',
    ]);
    const metrics = await (await t.fetch('/metrics')).text();
    expect(metrics).toContain('weft_claims_refused{node="a-evil",field="podCIDR"} 3');
    expect(t.logs.filter((l) => l.msg === "a node's claim refused").map((l) => l.value)).toEqual(['198.18.1.0/25', '198.19.2.0/24', '::/0']);

    // The node takes its bad claims back: the problems clear, and say so once.
    t.cluster.setNode({ name: 'a-evil', internalAddresses: ['198.18.1.66'], podCIDRs: ['198.19.66.0/24'] });
    await t.waitForReconcile('watcher');
    expect((seen.at(-1) as ClusterView).claimProblems).toEqual([]);
    expect(await (await t.fetch('/metrics')).text()).not.toContain('weft_claims_refused{');
    expect(t.logs.filter((l) => l.msg === "a node's claim no longer refused")).toHaveLength(3);
    await t.stop();
  });

  it('a new address plan applies without a restart', async () => {
    const seen: ClusterView[] = [];
    const t = await startTestAgent({ plugins: [watcher(seen)], nodes: [{ name: 'n1', podCIDRs: ['10.9.1.0/24'] }] });
    await t.waitForReconcile('watcher');
    expect((seen.at(-1) as ClusterView).self.podCIDRs).toEqual(['10.9.1.0/24']);
    const { buildTestConfig } = await import('../testing/index.js');
    await t.agent.applyConfig(await buildTestConfig({ plugins: [watcher(seen)], self: 'n1', stateDir: t.stateDir, cluster: { podNetworks: ['198.19.0.0/16'] } }));
    await t.waitFor(() => (seen.at(-1) as ClusterView).self.podCIDRs.length === 0, { what: 'the claim refused under the new plan' });
    await t.stop();
  });
});
