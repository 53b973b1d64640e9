// Service tunnels benchmark: @weft/service-tunnels and the gre-tunnel plugin's ingress plan.
// 1. A Maglev table (M = 65537) for 10, 100 and 1000 endpoints: build time (median of 7).
// 2. One endpoint removed from a 1000-endpoint VIP: how many buckets change, against the 1/N a perfect scheme moves.
// 3. The same change on a gre-tunnel ingress node (M = 65537, the in-memory kernel): what the kernel driver writes —
//    the bucket deltas as elements of one nft transaction, against the whole table a rewrite would be — and the time
//    to plan and diff it.
// 4. The mpls-lwtunnel ingress plan for the same 1000 endpoints on 100 nodes — reading every node's label annotation
//    (hostile until checked), the on-link check, then the plan — against the gre-tunnel plan of the same endpoints
//    (the baseline, in the same run): what the labels and the on-link check add.
import { performance } from 'node:perf_hooks';
import { applyDesired } from '../core/dist/kernel/driver.js';
import { MemoryKernel } from '../core/dist/kernel/memory.js';
import { GreTunnelConfig, planIngress, RULE_PRIORITY } from '../plugins/gre-tunnel/dist/index.js';
import { endpointPaths, labelsText, MplsLwtunnelConfig, parseLabels, planIngress as planMplsIngress } from '../plugins/mpls-lwtunnel/dist/index.js';
import { changedBuckets, DEFAULT_TABLE_SIZE, maglevTable } from '../packages/service-tunnels/dist/index.js';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pods = (n) => Array.from({ length: n }, (_, i) => `198.19.${i >> 8}.${i & 255}`);

async function ingressChange() {
  const config = GreTunnelConfig.parse({ ingress: { nodeSelector: { ingress: 'true' } }, tableSize: DEFAULT_TABLE_SIZE });
  const owner = { name: 'gre-tunnel', linkPrefix: 'weft-gre', routeProtocol: 121, rulePriorities: [RULE_PRIORITY, RULE_PRIORITY] };
  const service = (addresses) => ({ namespace: 'web', name: 'front', uid: 'u1', vips: ['203.0.113.80'], affinity: 'flow', ignored: [], endpoints: addresses.map((address) => ({ address, family: 4, nodeName: 'n', state: 'active' })) });
  const all = pods(1000);
  const kernel = new MemoryKernel();
  const first = planIngress([service(all)], config, { self: 'n1', now: 0, previousSlots: new Map() });
  const cold = await applyDesired(kernel, owner, first.desired);
  const without = all.filter((_, i) => i !== 500);
  const next = (addresses, previous, now) => planIngress([service(addresses)], config, { self: 'n1', now, previousSlots: previous.slots, previousTables: new Map([['203.0.113.80', previous.vips[0].table]]) });
  // The change measured: endpoint 500 leaves.
  let plan = next(without, first, 1);
  const removed = await applyDesired(kernel, owner, plan.desired);
  const nft = removed.changes.filter((c) => c.kind === 'nftables');
  const elements = nft.flatMap((c) => [...Object.values(c.object.add ?? {}), ...Object.values(c.object.remove ?? {})]).reduce((a, l) => a + l.length, 0);
  const removal = { changes: removed.changes.map((c) => `${c.op} ${c.kind}`), nftOps: nft.map((c) => c.op), fields: nft.flatMap((c) => c.fields ?? []), elements };
  // Its time, and its way back, alternately (median of 7).
  const times = [];
  for (let r = 0; r < 7; r++) {
    const t = performance.now();
    plan = next(r % 2 === 0 ? all : without, plan, r + 2);
    await applyDesired(kernel, owner, plan.desired);
    times.push(performance.now() - t);
  }
  // A reconcile that changes nothing (a resync): the same plan again, read, diffed, nothing written.
  const steady = [];
  for (let r = 0; r < 7; r++) {
    const t = performance.now();
    plan = next(all, plan, 100 + r);
    const same = await applyDesired(kernel, owner, plan.desired);
    steady.push(performance.now() - t);
    if (same.changes.length > 0) throw new Error(`an unchanged plan wrote ${String(same.changes.length)} changes`);
  }
  const fullElements = Object.values(first.desired.nftables[0].elements).reduce((a, l) => a + l.length, 0);
  return { tableSize: DEFAULT_TABLE_SIZE, endpoints: 1000, coldChanges: cold.changes.length, removal, fullTableElements: fullElements, planAndDiffMs: +median(times).toFixed(1), unchangedMs: +median(steady).toFixed(1) };
}

function mplsIngress() {
  const gre = GreTunnelConfig.parse({ ingress: { nodeSelector: { ingress: 'true' } }, tableSize: DEFAULT_TABLE_SIZE });
  const mpls = MplsLwtunnelConfig.parse({ ingress: { nodeSelector: { ingress: 'true' } }, tableSize: DEFAULT_TABLE_SIZE });
  // 100 nodes on one /16 segment, 10 endpoint pods each, each node's labels in its annotation.
  const nodes = Array.from({ length: 100 }, (_, n) => {
    const addresses = Array.from({ length: 10 }, (_, p) => `198.19.${n}.${10 + p}`);
    return {
      name: `n${n}`,
      internalAddresses: [`198.18.${n >> 8}.${(n & 255) + 1}`],
      podCIDRs: [`198.19.${n}.0/24`],
      location: 'dc1',
      annotations: { 'weft.io/mpls-labels': labelsText(new Map(addresses.map((a, i) => [a, 1000 + i]))) },
      addresses,
    };
  });
  const service = { namespace: 'web', name: 'front', uid: 'u1', vips: ['203.0.113.80'], affinity: 'flow', ignored: [], endpoints: nodes.flatMap((n) => n.addresses.map((address) => ({ address, family: 4, nodeName: n.name, state: 'active' }))) };
  const self = { name: 'ingress', location: 'dc1', interfaces: [{ name: 'eth0', addresses: ['198.18.200.1/16'] }] };
  const greTimes = [];
  const mplsTimes = [];
  let unused = 0;
  for (let r = 0; r < 9; r++) {
    let t = performance.now();
    planIngress([service], gre, { self: 'ingress', now: 0, previousSlots: new Map() });
    greTimes.push(performance.now() - t);
    t = performance.now();
    const labels = new Map(nodes.map((n) => [n.name, parseLabels(n.annotations['weft.io/mpls-labels'], n, mpls.labels).labels]));
    const { paths, unused: left } = endpointPaths([service], nodes, self, (name) => labels.get(name));
    planMplsIngress([service], paths, left, mpls, { self: 'ingress', now: 0, previousSlots: new Map() });
    mplsTimes.push(performance.now() - t);
    unused = left.length;
  }
  const g = median(greTimes);
  const m = median(mplsTimes);
  return { endpoints: 1000, nodes: 100, unused, grePlanMs: +g.toFixed(1), mplsPlanMs: +m.toFixed(1), ratio: +(m / g).toFixed(2) };
}

export async function serviceTunnelsBenchmark() {
  const builds = [];
  for (const n of [10, 100, 1000]) {
    const times = [];
    for (let r = 0; r < 7; r++) {
      const t = performance.now();
      maglevTable(pods(n), `seed-${r}`);
      times.push(performance.now() - t);
    }
    builds.push({ endpoints: n, buildMs: +median(times).toFixed(2) });
  }
  const before = maglevTable(pods(1000), 'seed');
  const after = maglevTable(pods(1000).filter((_, i) => i !== 500), 'seed');
  const changed = changedBuckets(before, after).length;
  return {
    tableSize: DEFAULT_TABLE_SIZE,
    builds,
    oneOf1000Removed: { changedBuckets: changed, fraction: +(changed / DEFAULT_TABLE_SIZE).toFixed(4), ideal: +(1 / 1000).toFixed(4) },
    greIngress: await ingressChange(),
    mplsIngress: mplsIngress(),
  };
}
