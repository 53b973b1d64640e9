// Scale: what one agent pays in a big cluster. A lab of 3 agents in the DaemonSet's configuration (kubernetes source,
// wireguard full mesh + keepalive, defaults) whose API server also holds N synthetic nodes (1,000 and 5,000): Ready,
// with WireGuard keys, endpoints, overlay addresses and pod CIDRs inside the lab's address plan — peers every agent
// configures in its wireguard-go device (they never answer). The periodic resync is set to 10 minutes so that no
// window holds one by chance (with 1,000 peers one costs ~0.4 s of CPU, more than the changes measured); what it
// costs at the default 30 s is about two peer changes' reconciles a minute. On n1's agent:
// - convergeSeconds: the synthetic nodes put into the API server -> n1's device has every peer;
// - rssMiB: VmRSS after the idle window;
// - idleCpuSecondsPerMinute: nothing changes (keepalive probes the peers it picked; no resync);
// - unrelatedChangeCpuMs: a synthetic node's `example.com/counter` annotation changes twice a second (nothing a
//   plugin reads): CPU per change beyond the idle window;
// - peerChangeCpuMs: a synthetic node's WireGuard endpoint port changes once a second: the whole planner and one
//   peer's kernel write, per change; peerChangeReconcileMs: the wireguard reconciles' own median duration (metrics);
// - watchBytesPerChange: one watch event of such a node, as the API server sends it to every agent.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentMetrics, agentPid, config, round, sleep, usage } from './efficiency.mjs';
import './builtins.mjs';

/** A synthetic node k: underlay 198.18.(100+k/250).(k%250+1), pod CIDR a /29 of 198.19.16.0/20…, overlay 100.100.x.y. */
function syntheticNode(k, publicKey) {
  const underlay = `198.18.${String(100 + Math.floor(k / 250))}.${String((k % 250) + 1)}`;
  const pod = `198.19.${String(16 + (k >> 5))}.${String((k & 31) << 3)}/29`;
  const name = `s${String(k).padStart(5, '0')}`;
  return {
    metadata: {
      name,
      labels: { 'kubernetes.io/hostname': name, 'topology.kubernetes.io/region': 'synthetic' },
      annotations: {
        'weft.io/wireguard-public-key': publicKey,
        'weft.io/wireguard-endpoint': `${underlay}:51820`,
        'weft.io/wireguard-ip': `100.100.${String(k >> 8)}.${String(k & 255)},fd77:6566:7400::64:${(k + 1).toString(16)}`,
        'weft.io/wireguard-ip-since': '2000000000',
      },
    },
    spec: { podCIDR: pod, podCIDRs: [pod] },
    status: { addresses: [{ type: 'InternalIP', address: underlay }, { type: 'Hostname', address: name }], conditions: [{ type: 'Ready', status: 'True' }] },
  };
}

/** The wireguard reconciles' total duration and count so far, from n1's metrics. */
async function reconcileSeconds(lab, node) {
  const body = await agentMetrics(lab, node);
  const pick = (suffix) => {
    let total = 0;
    for (const m of body.matchAll(new RegExp(`^weft_reconcile_duration_seconds_${suffix}\\{[^}]*plugin="wireguard"[^}]*\\} ([0-9.e+-]+)`, 'gm'))) total += Number(m[1]);
    return total;
  };
  return { sum: pick('sum'), count: pick('count') };
}

async function peers(lab, node) {
  const r = await lab.exec(node, ['wg', 'show', 'weft-wg0', 'peers'], { timeoutMs: 30_000 });
  return r.stdout.trim().split('\n').filter(Boolean).length;
}

async function one(Lab, labApiControl, generateWireGuardKeyPair, dir, n, windowS) {
  const name = `bs${String(process.pid % 100000)}`;
  const lab = await Lab.up({ name, nodes: 3, discovery: 'kubernetes', config: await config(dir, { wireguard: { granularity: 'full' }, keepalive: {} }, '10m'), timeoutMs: 60_000 });
  const control = (method, path, body) => labApiControl(join(lab.dir, 'api.sock'), method, path, body);
  try {
    const nodes = Array.from({ length: n }, (_, k) => syntheticNode(k, generateWireGuardKeyPair().publicKey));
    const t0 = performance.now();
    for (let i = 0; i < nodes.length; i += 32) await Promise.all(nodes.slice(i, i + 32).map((o) => control('PUT', `/nodes/${o.metadata.name}`, o)));
    let converged = NaN;
    for (let i = 0; i < 600; i++) {
      if ((await peers(lab, 'n1')) >= n + 2) {
        converged = (performance.now() - t0) / 1000;
        break;
      }
      await sleep(1000);
    }
    await sleep(20_000);
    const pid = agentPid(lab, 'n1');
    const idle0 = usage(pid);
    await sleep(windowS * 1000);
    const idle1 = usage(pid);
    const idleRate = (idle1.cpuSeconds - idle0.cpuSeconds) / windowS;

    // Unrelated: a synthetic node's annotation that no plugin reads, twice a second.
    const target = structuredClone(nodes[0]);
    let changes = 0;
    const u0 = usage(pid);
    const end = performance.now() + windowS * 1000;
    while (performance.now() < end) {
      target.metadata.annotations['example.com/counter'] = String(++changes);
      await control('PUT', `/nodes/${target.metadata.name}`, target);
      await sleep(500);
    }
    const u1 = usage(pid);
    const unrelated = ((u1.cpuSeconds - u0.cpuSeconds - idleRate * windowS) * 1000) / changes;

    // A peer's endpoint, once a second: the planner and one peer's write.
    const peer = structuredClone(nodes[1]);
    const r0 = await reconcileSeconds(lab, 'n1');
    let moves = 0;
    const p0 = usage(pid);
    const end2 = performance.now() + windowS * 1000;
    while (performance.now() < end2) {
      moves++;
      peer.metadata.annotations['weft.io/wireguard-endpoint'] = `${peer.status.addresses[0].address}:${String(40000 + moves)}`;
      await control('PUT', `/nodes/${peer.metadata.name}`, peer);
      await sleep(1000);
    }
    await sleep(2000);
    const p1 = usage(pid);
    const r1 = await reconcileSeconds(lab, 'n1');
    const peerChange = ((p1.cpuSeconds - p0.cpuSeconds - idleRate * (windowS + 2)) * 1000) / moves;
    return {
      nodes: n,
      convergeSeconds: round(converged, 1),
      rssMiB: round(idle1.rssMiB, 1),
      rssAnonMiB: round(Number(/RssAnon:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024, 1),
      idleCpuSecondsPerMinute: round(idleRate * 60),
      unrelatedChangeCpuMs: round(unrelated),
      peerChangeCpuMs: round(peerChange, 1),
      peerChangeReconcileMs: r1.count > r0.count ? round(((r1.sum - r0.sum) / (r1.count - r0.count)) * 1000, 1) : null,
      watchBytesPerChange: JSON.stringify({ type: 'MODIFIED', object: { ...peer, metadata: { ...peer.metadata, resourceVersion: '123456' } } }).length,
    };
  } finally {
    await lab.down();
  }
}

export async function scaleBenchmark(options = {}) {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (the lab)' };
  const quick = options.quick === true;
  const sizes = quick ? [1000] : [1000, 5000];
  const windowS = quick ? 20 : 60;
  const { Lab } = await import('../core/dist/lab/index.js');
  const { labApiControl } = await import('../core/dist/lab/apiserver.js');
  const { generateWireGuardKeyPair } = await import('../core/dist/kernel/wgkeys.js');
  const dir = await mkdtemp(join(tmpdir(), 'weft-bench-scale-'));
  try {
    const out = { quick, windowSeconds: windowS, configuration: 'kubernetes source, wireguard (full mesh) + keepalive, defaults but resync 10 min; N synthetic peers', sizes: [] };
    for (const n of sizes) out.sizes.push(await one(Lab, labApiControl, generateWireGuardKeyPair, dir, n, windowS));
    return out;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
