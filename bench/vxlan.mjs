// VXLAN plugin benchmark.
// 1. The overlay planner for 1000 and 5000 nodes (a third on this node's subnet, the rest encapsulated), and the
//    desired state it makes, beside the floor in the same run: reading and checking every node's VTEP annotation once.
// 2. The segments planner for a segment of every node with an IPv4 pool: cold (every member's address computed) and
//    with the same members again.
// 3. An unchanged reconcile's kernel writes, through the real plugin in an agent (in-memory kernel), 1000 nodes.
import { performance } from 'node:perf_hooks';
import { MemoryKernel, startTestAgent } from '../core/dist/testing/index.js';
import { VxlanConfig } from '../plugins/vxlan/dist/config.js';
import { PodNetworks, readVtep, vtepMAC } from '../plugins/vxlan/dist/facts.js';
import { desiredState, planOverlay, planSegments } from '../plugins/vxlan/dist/planner.js';
import vxlan from '../plugins/vxlan/dist/index.js';
import './builtins.mjs';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// Addresses (in memory only; the ranges of docs/design.md): underlay 100.64.0.0/10 in /20 subnets, pods /28s of
// 198.18.0.0/15.
const b = (i, base) => `${base}.${(i >> 8) & 255}.${i & 255}`;

export function cluster(n) {
  return Array.from({ length: n }, (_, i) => {
    // Every third node on the first node's subnet (100.64.0.0/20: i < 4096 and i % 3 === 0), the others elsewhere.
    const underlay = i % 3 === 0 ? b(i / 3 + 1, '100.64') : b(i + 8192, '100.64');
    return {
      name: `node-${String(i).padStart(5, '0')}`,
      internalAddresses: [underlay],
      externalAddresses: [],
      podCIDRs: [`198.${18 + (i >> 12)}.${(i >> 4) & 255}.${(i & 15) << 4}/28`],
      labels: { segment: 'all' },
      annotations: { 'weft.io/vxlan-vtep': `${vtepMAC(`node-${String(i).padStart(5, '0')}`, 1)},${underlay}` },
      ready: true,
      createdAt: i,
      location: undefined,
    };
  });
}

const settings = { interface: 'weft-vx0', vni: 1, port: 4789, mtu: 1450, segmentMtu: 1450, segmentLocal: '100.64.0.1', bridges: new Set() };

export function planTimes(nodes) {
  const self = { name: nodes[0].name, mac: vtepMAC(nodes[0].name, 1), underlay: nodes[0].internalAddresses[0], location: undefined, podCIDRs: nodes[0].podCIDRs, networks: ['100.64.0.0/20'] };
  const podNetworks = ['198.18.0.0/15'];
  const rounds = nodes.length >= 5000 ? 7 : 15;
  const plan = [];
  const floor = [];
  const state = [];
  let peers = 0;
  let direct = 0;
  for (let r = 0; r < rounds; r++) {
    const fresh = nodes.map((n) => ({ ...n }));
    let t = performance.now();
    const pods = new PodNetworks([...podNetworks, ...fresh.flatMap((n) => n.podCIDRs)]);
    for (const n of fresh) readVtep(n, pods);
    floor.push(performance.now() - t);
    t = performance.now();
    const p = planOverlay({ nodes: fresh, self, config: { directRouting: true }, podNetworks });
    plan.push(performance.now() - t);
    t = performance.now();
    desiredState(p, [], settings);
    state.push(performance.now() - t);
    peers = p.peers.length;
    direct = p.peers.filter((x) => x.encapsulated.length === 0).length;
  }
  return { planMs: +median(plan).toFixed(2), desiredStateMs: +median(state).toFixed(2), floorMs: +median(floor).toFixed(2), ratio: +(median(plan) / median(floor)).toFixed(2), peers, direct };
}

export function segmentTimes(nodes) {
  const config = VxlanConfig.parse({ mode: 'segments', segments: [{ name: 'all', vni: 100, nodeSelector: { segment: 'all' }, addresses: { pools: ['10.0.0.0/16'] } }] });
  const times = [];
  let members = 0;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    const [s] = planSegments({ nodes, self: nodes[0].name, segments: config.segments, underlayOf: (n) => n.internalAddresses[0] });
    times.push(performance.now() - t);
    members = s.peers.length + 1;
  }
  // The first plan allocates every member's address; the next ones, with the same members, reuse it.
  return { coldMs: +times[0].toFixed(2), planMs: +median(times.slice(1)).toFixed(2), members };
}

async function unchangedWrites(n) {
  const nodes = cluster(n).map((x, i) => (i === 0 ? { ...x, name: 'self', annotations: {} } : x));
  const kernel = new MemoryKernel();
  kernel.addForeign({ links: [{ kind: 'dummy', name: 'eth0' }], addresses: [{ dev: 'eth0', address: `${nodes[0].internalAddresses[0]}/20` }] });
  const t = await startTestAgent({ plugins: [{ plugin: vxlan, config: {} }], nodes, self: 'self', kernel, http: false, logLevel: 'warn', reconcile: { resync: '300ms' } });
  try {
    await t.waitForReconcile('vxlan', { timeoutMs: 60_000 });
    const cold = kernel.log.length;
    const started = performance.now();
    await t.waitForReconcile('vxlan', { runs: 3, timeoutMs: 60_000 });
    return { nodes: n, coldWrites: cold, reconciles: 3, unchangedWrites: kernel.log.length - cold, secondsFor3: +((performance.now() - started) / 1000).toFixed(2) };
  } finally {
    await t.stop();
  }
}

export async function vxlanBenchmark() {
  const planner = [];
  for (const n of [1000, 5000]) planner.push({ nodes: n, ...planTimes(cluster(n)) });
  return { planner, segments: segmentTimes(cluster(5000)), reconcile: await unchangedWrites(1000) };
}
