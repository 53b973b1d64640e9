// The core's claim checks (core/src/discovery/claims.ts): what every view change costs an agent, beside the floor
// in the same run — building the view itself (sorting and freezing the nodes), which every view change pays anyway.
// Clusters of 1000 and 5000 nodes with one pod CIDR and two addresses each; honest, and with 1 % of the nodes
// claiming another node's pod CIDR (so that the conflict rules run). Three cases per cluster: every check (parse
// caches warm after the first round), a change that claims something new (a node joins: every check runs again),
// and the common change that claims nothing new (a node publishes an annotation: the last outcome carries over).
import { performance } from 'node:perf_hooks';
import { claimRules, vetClaims } from '../core/dist/discovery/claims.js';
import { makeView } from '../core/dist/discovery/view.js';
import { CoreConfigSchema } from '../core/dist/config/schema.js';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// Addresses (in memory only; the ranges of docs/design.md): nodes in 100.64.0.0/10, pods /28s of 198.18.0.0/15.
const ip = (i, base) => `${base}.${(i >> 8) & 255}.${i & 255}`;
const pod = (i) => `198.${18 + (i >> 12)}.${(i >> 4) & 255}.${(i & 15) << 4}/28`;

function cluster(n, hostileEvery) {
  return Array.from({ length: n }, (_, i) => ({
    name: `node-${String(i).padStart(5, '0')}`,
    internalAddresses: [ip(i + 1, '100.64'), `2001:db8::${(i + 1).toString(16)}`],
    externalAddresses: [],
    podCIDRs: [hostileEvery && i % hostileEvery === hostileEvery - 1 ? pod(i - 1) : pod(i)],
    labels: {},
    annotations: {},
    ready: true,
    location: undefined,
    createdAt: i,
  }));
}

export async function claimsBenchmark() {
  const rules = claimRules(CoreConfigSchema.shape.cluster.parse({ podNetworks: ['198.18.0.0/15'], underlayNetworks: ['100.64.0.0/10'] }));
  const out = [];
  for (const [n, hostileEvery] of [[1000, 0], [5000, 0], [5000, 100]]) {
    const nodes = cluster(n, hostileEvery);
    const rounds = 15;
    const floor = [];
    const cold = [];
    const joined = [];
    const annotated = [];
    let refused = 0;
    for (let r = 0; r < rounds; r++) {
      let t = performance.now();
      const view = makeView({ selfName: nodes[0].name, nodes, revision: 1 });
      floor.push(performance.now() - t);
      t = performance.now();
      const vetted = vetClaims(view, rules);
      cold.push(performance.now() - t);
      refused = vetted.claimProblems.filter((p) => p.outcome === 'refused').length;
      const extra = { ...nodes[1], name: `joined-${r}`, internalAddresses: [ip(60000 + r, '100.64')], podCIDRs: [pod(8000 + r)], createdAt: 1e9 };
      const withJoin = makeView({ selfName: nodes[0].name, nodes: [...nodes, extra], revision: 2 });
      t = performance.now();
      const v2 = vetClaims(withJoin, rules, { source: view, vetted });
      joined.push(performance.now() - t);
      const withNote = makeView({ selfName: nodes[0].name, nodes: withJoin.nodes.map((x, i) => (i === 7 ? { ...x, annotations: { 'weft.io/x': String(r) } } : x)), revision: 3 });
      t = performance.now();
      vetClaims(withNote, rules, { source: withJoin, vetted: v2 });
      annotated.push(performance.now() - t);
    }
    const f = median(floor);
    const row = (xs) => ({ ms: +median(xs).toFixed(2), ratio: +(median(xs) / f).toFixed(2) });
    out.push({ nodes: n, hostile: hostileEvery ? n / hostileEvery : 0, floorMs: +f.toFixed(2), cold: row(cold), joined: row(joined), annotated: row(annotated), refused });
  }
  await Promise.resolve();
  return out;
}
