// WireGuard plugin benchmark.
// 1. The planner for 100, 1000 and 5000 nodes (full mesh, and by location with 50 nodes per location), cold and warm,
//    beside the floor in the same run: reading and checking every node's annotations once (what a cold plan must do).
// 2. An unchanged reconcile's kernel writes, through the real plugin in an agent (in-memory kernel), 1000 nodes.
// 3. In the lab (root): from a new node's agent start until its pod reaches every other pod through the mesh (its
//    handshakes with all peers).
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { generateWireGuardKeyPair } from '../core/dist/kernel/wgkeys.js';
import { MemoryKernel, startTestAgent } from '../core/dist/testing/index.js';
import { WireGuardConfig } from '../plugins/wireguard/dist/config.js';
import { readNode } from '../plugins/wireguard/dist/facts.js';
import { planMesh } from '../plugins/wireguard/dist/planner.js';
import wireguard from '../plugins/wireguard/dist/index.js';
import './builtins.mjs';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// Addresses (in memory only; the ranges of docs/design.md): underlay 100.64.0.0/11, overlay 100.96.0.0/11, pods /28s of
// 198.18.0.0/15 (8192 of them).
const OVERLAY = '100.96.0.0/11';
const b = (i, base) => `${base}.${(i >> 8) & 255}.${i & 255}`;

export function cluster(n, perLocation) {
  const nodes = Array.from({ length: n }, (_, i) => ({
    name: `node-${String(i).padStart(5, '0')}`,
    internalAddresses: [b(i + 1, '100.64')],
    externalAddresses: [],
    podCIDRs: [`198.${18 + (i >> 12)}.${(i >> 4) & 255}.${(i & 15) << 4}/28`],
    labels: {},
    annotations: {
      'weft.io/wireguard-public-key': generateWireGuardKeyPair().publicKey,
      'weft.io/wireguard-endpoint': `${b(i + 1, '100.64')}:51820`,
      'weft.io/wireguard-ip': `${b(i + 1, '100.96')},fd77:6566:7400::${(i + 1).toString(16)}`,
      'weft.io/wireguard-ip-since': '1000',
    },
    ready: true,
    createdAt: i,
    location: perLocation ? `loc-${Math.floor(i / perLocation)}` : undefined,
  }));
  return nodes;
}

// A plan is timed twice: cold (every node a new object, as after a relist: each is read and checked) and warm (the
// same node objects as the plan before, as in a steady cluster where the core keeps unchanged nodes the same objects:
// the facts read before are reused), beside the floor of reading and checking every node once.
export function planTimes(nodes, granularity) {
  const config = WireGuardConfig.parse({ granularity, overlayCIDR: OVERLAY });
  const self = { publicKey: nodes[0].annotations['weft.io/wireguard-public-key'], endpoint: undefined, overlay4: '100.96.0.1', overlay6: 'fd77:6566:7400::1', overlaySince: 1000 };
  const rounds = nodes.length >= 5000 ? 5 : 15;
  const cold = [];
  const warm = [];
  const floor = [];
  let peers = 0;
  for (let r = 0; r < rounds; r++) {
    const fresh = nodes.map((n) => ({ ...n }));
    const view = { self: fresh[0], nodes: fresh, revision: 1 };
    let t = performance.now();
    for (const n of nodes) readNode(n, config);
    floor.push(performance.now() - t);
    t = performance.now();
    const p = planMesh({ view, config, self, now: 2000 });
    cold.push(performance.now() - t);
    t = performance.now();
    planMesh({ view, config, self, now: 2000 });
    warm.push(performance.now() - t);
    peers = p.peers.length;
  }
  return {
    planMs: +median(cold).toFixed(2),
    warmPlanMs: +median(warm).toFixed(2),
    floorMs: +median(floor).toFixed(2),
    ratio: +(median(cold) / median(floor)).toFixed(2),
    peers,
    ...(nodes.length === 5000 && granularity === 'full' ? { targetMs: 100 } : {}),
  };
}

async function unchangedWrites(n) {
  const nodes = cluster(n, 0).map((x, i) => (i === 0 ? { ...x, name: 'self', annotations: {} } : x));
  const kernel = new MemoryKernel();
  kernel.addForeign({ links: [{ kind: 'dummy', name: 'eth0' }], addresses: [{ dev: 'eth0', address: `${nodes[0].internalAddresses[0]}/11` }] });
  const t = await startTestAgent({ plugins: [{ plugin: wireguard, config: { granularity: 'full', heartbeat: '1s', overlayCIDR: OVERLAY } }], nodes, self: 'self', kernel, http: false, logLevel: 'warn' });
  try {
    await t.waitForReconcile('wireguard', { timeoutMs: 60_000 });
    const cold = kernel.log.length;
    // The next heartbeats read the device and apply the plan again; nothing differs.
    await t.waitForReconcile('wireguard', { runs: 3, timeoutMs: 60_000 });
    return { nodes: n, coldWrites: cold, reconciles: 3, unchangedWrites: kernel.log.length - cold };
  } finally {
    await t.stop();
  }
}

async function labJoin() {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (the lab)' };
  const { Lab } = await import('../core/dist/lab/index.js');
  const name = `bw${String(process.pid % 100000)}`;
  const ping = async (lab, from, to) => (await lab.exec(from, ['ping', '-c', '1', '-W', '0.2', to], { timeoutMs: 5000 })).exitCode === 0;
  try {
    const lab = await Lab.up({ name, nodes: 4, timeoutMs: 60_000 });
    const s = await lab.status();
    await lab.leave('n4');
    await new Promise((r) => setTimeout(r, 3000));
    const started = performance.now();
    await lab.startAgent('n4');
    const reached = {};
    for (let i = 0; i < 600 && Object.keys(reached).length < 3; i++) {
      for (const peer of s.nodes.filter((n) => n.name !== 'n4' && reached[n.name] === undefined)) {
        if (await ping(lab, 'n4:pod', peer.pod)) reached[peer.name] = Math.round(performance.now() - started);
      }
    }
    const handshakes = (await lab.exec('n4', ['wg', 'show', 'weft-wg0', 'latest-handshakes'])).stdout.trim().split('\n').filter((l) => Number(l.split('\t')[1]) > 0).length;
    return { joinToAllPeersMs: Math.max(...Object.values(reached)), perPeerMs: reached, handshakes };
  } finally {
    await Lab.down(name);
  }
}

export async function wireguardBenchmark() {
  const planner = [];
  for (const n of [100, 1000, 5000]) {
    const nodes = cluster(n, 0);
    planner.push({ nodes: n, granularity: 'full', ...planTimes(nodes, 'full') });
    planner.push({ nodes: n, granularity: 'location', ...planTimes(cluster(n, 50), 'location') });
  }
  return { planner, reconcile: await unchangedWrites(1000), lab: await labJoin() };
}
