// `npm run bench [-- --json]`: every benchmark, as a table or as one JSON object ({"kernel": {...}, ...}).
import process from 'node:process';
import { claimsBenchmark } from './claims.mjs';
import { efficiencyBenchmark } from './efficiency.mjs';
import { kernelBenchmark } from './kernel.mjs';
import { memoryBenchmark } from './memory.mjs';
import { scaleBenchmark } from './scale.mjs';
import { keepaliveBenchmark } from './keepalive.mjs';
import { serviceTunnelsBenchmark } from './service-tunnels.mjs';
import { vxlanBenchmark } from './vxlan.mjs';
import { wireguardBenchmark } from './wireguard.mjs';

const json = process.argv.includes('--json');
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
const results = {};
if (!only || only === 'kernel') results.kernel = await kernelBenchmark();
if (!only || only === 'memory') results.memory = await memoryBenchmark();
if (!only || only === 'wireguard') results.wireguard = await wireguardBenchmark();
if (!only || only === 'vxlan') results.vxlan = await vxlanBenchmark();
if (!only || only === 'service-tunnels') results.serviceTunnels = await serviceTunnelsBenchmark();
if (!only || only === 'keepalive') results.keepalive = await keepaliveBenchmark();
if (!only || only === 'claims') results.claims = await claimsBenchmark();
if (!only || only === 'efficiency') results.efficiency = await efficiencyBenchmark({ quick: process.argv.includes('--quick') });
if (!only || only === 'scale') results.scale = await scaleBenchmark({ quick: process.argv.includes('--quick') });

function printWireguard(w) {
  console.log('wireguard planner (median ms; floor = reading and checking every node\'s annotations)');
  for (const p of w.planner) console.log(`  ${String(p.nodes).padStart(5)} nodes ${p.granularity.padEnd(8)} plan ${String(p.planMs).padStart(8)} ms  floor ${String(p.floorMs).padStart(8)} ms  ${p.ratio}x  (${p.peers} peers)`);
  const r = w.reconcile;
  console.log(`wireguard reconcile, ${r.nodes} nodes: cold ${r.coldWrites} kernel writes; ${r.reconciles} unchanged reconciles after it: ${r.unchangedWrites} writes (target 0)`);
  if (w.lab.skipped) console.log(`wireguard lab join: skipped (${w.lab.skipped})`);
  else console.log(`wireguard lab join: agent start -> its pod reaches all 3 peers' pods: ${w.lab.joinToAllPeersMs} ms (per peer ${JSON.stringify(w.lab.perPeerMs)}; ${w.lab.handshakes} handshakes)`);
}

if (json) {
  process.stdout.write(`${JSON.stringify(results)}\n`);
} else {
  const m = results.memory;
  if (m) {
    const row = (label, v) => console.log(`  ${label.padEnd(58)} ${String(v.rss).padStart(4)} MiB  ${String(v.anon).padStart(4)} MiB`);
    console.log(`agent memory once ready (target <= ${m.targetMiB} MiB)                     VmRSS  private`);
    row('bare node process', m.bareNodeMiB);
    row('weft, directory source', m.directoryMiB);
    row('weft, kubernetes source', m.kubernetesMiB);
    row('weft, kubernetes source, --max-semi-space-size=1', m.kubernetesFlagsMiB);
    row('weft bundle, kubernetes source', m.bundleMiB);
    row('weft bundle, kubernetes source, DaemonSet flags', m.bundleFlagsMiB);
    row('weft startup snapshot, kubernetes source, DaemonSet flags', m.snapshotFlagsMiB);
    console.log(`  (DaemonSet flags: ${m.bundleFlags})`);
  }
  if (results.wireguard) printWireguard(results.wireguard);
  const st = results.serviceTunnels;
  if (st) {
    console.log(`service tunnels: Maglev table (M = ${st.tableSize}) build, median ms: ${st.builds.map((b) => `${b.endpoints} endpoints ${b.buildMs}`).join(', ')}`);
    const o = st.oneOf1000Removed;
    console.log(`  one of 1000 endpoints removed: ${o.changedBuckets} buckets change (${(o.fraction * 100).toFixed(2)} %; ideal ${(o.ideal * 100).toFixed(2)} %)`);
    const g = st.greIngress;
    console.log(`gre-tunnel ingress, a VIP of ${g.endpoints} endpoints (M = ${g.tableSize}): cold ${g.coldChanges} kernel changes; one endpoint leaves: ${g.removal.changes.join(', ')}`);
    console.log(`  nft: ${g.removal.nftOps.join(', ')} (${g.removal.fields.join(', ')}) = ${g.removal.elements} elements in one transaction, against ${g.fullTableElements} for the whole table; plan + diff + apply ${g.planAndDiffMs} ms; an unchanged reconcile ${g.unchangedMs} ms, 0 writes`);
    const m = st.mplsIngress;
    console.log(`mpls-lwtunnel ingress plan, ${m.endpoints} endpoints on ${m.nodes} nodes (labels read and checked, on-link check): ${m.mplsPlanMs} ms, against the gre-tunnel plan of the same endpoints ${m.grePlanMs} ms: ${m.ratio}x (${m.unused} left out)`);
  }
  const v = results.vxlan;
  if (v) {
    console.log("vxlan planner (median ms; floor = reading and checking every node's VTEP annotation)");
    for (const p of v.planner) console.log(`  ${String(p.nodes).padStart(5)} nodes  plan ${String(p.planMs).padStart(7)} ms  desired state ${String(p.desiredStateMs).padStart(6)} ms  floor ${String(p.floorMs).padStart(7)} ms  ${p.ratio}x  (${p.peers} peers, ${p.direct} direct)`);
    console.log(`vxlan segment of ${v.segments.members} members with a pool: ${v.segments.coldMs} ms cold, ${v.segments.planMs} ms with the same members`);
    const r = v.reconcile;
    console.log(`vxlan reconcile, ${r.nodes} nodes: cold ${r.coldWrites} kernel writes; ${r.reconciles} unchanged reconciles after it (${r.secondsFor3} s): ${r.unchangedWrites} writes (target 0)`);
  }
  if (results.claims) {
    console.log('claim checks per view change (median ms, and x the floor: building the view itself)');
    for (const c of results.claims) {
      const cell = (x) => `${String(x.ms).padStart(7)} ms ${String(x.ratio).padStart(6)}x`;
      console.log(`  ${String(c.nodes).padStart(5)} nodes, ${String(c.hostile).padStart(2)} hostile (${c.refused} refused): floor ${c.floorMs} ms; every check ${cell(c.cold)}; a node joins ${cell(c.joined)}; an annotation changes ${cell(c.annotated)}`);
    }
  }
  const e = results.efficiency;
  if (e?.skipped) console.log(`efficiency: skipped (${e.skipped})`);
  else if (e) {
    const t = e.targets;
    console.log(`efficiency, the lab's n1 agent (${e.configuration}), ${e.windowSeconds} s windows${e.quick ? ' (--quick: noisier, short soak)' : ''}:`);
    console.log(`  idle CPU ${e.idleCpuSecondsPerMinute} s per minute (wireguard alone: ${e.idleCpuSecondsPerMinuteWireguardOnly}, target <= ${t.idleCpuSecondsPerMinuteWireguardOnly})`);
    console.log(`  no-op wireguard reconcile ${e.noopReconcileCpuMs} ms CPU (heartbeat 1 s: ${e.noopReconciles} in the window; target <= ${t.noopReconcileCpuMs})`);
    console.log(`  unrelated Node change ${e.unrelatedChangeCpuMs} ms CPU (target <= ${t.unrelatedChangeCpuMs}); Node patches ${e.nodePatchesPerMinute} per node per minute at rest (target ${t.nodePatchesPerMinute})`);
    console.log(`  join: agent start -> handshakes with every peer, median ${e.joinMedianMs} ms on the kubernetes source (${e.joinTrialsMs.join(', ')}), ${e.joinMedianMsDirectory} ms on the directory source (target <= ${t.joinMedianMs})`);
    console.log(`  soak ${e.soakSeconds} s with ${e.soakCycles} join/leave cycles: VmRSS ${e.rssMiB} MiB at the end (max ${e.rssMaxMiB}; target <= ${t.rssMiB}), slope ${e.rssSlopeMiBPerMin} MiB/min over the last two thirds`);
  }
  const sc = results.scale;
  if (sc?.skipped) console.log(`scale: skipped (${sc.skipped})`);
  else if (sc) {
    console.log(`scale, the lab's n1 agent (${sc.configuration}), ${sc.windowSeconds} s windows${sc.quick ? ' (--quick: 1,000 nodes only)' : ''}:`);
    for (const r of sc.sizes) {
      console.log(
        `  ${String(r.nodes).padStart(5)} nodes: converged in ${r.convergeSeconds} s; VmRSS ${r.rssMiB} MiB (private ${r.rssAnonMiB}); idle ${r.idleCpuSecondsPerMinute} s CPU/min; ` +
          `unrelated change ${r.unrelatedChangeCpuMs} ms; peer change ${r.peerChangeCpuMs} ms CPU (reconcile ${r.peerChangeReconcileMs} ms); ${r.watchBytesPerChange} bytes per watch event`,
      );
    }
  }
  const ka = results.keepalive;
  if (ka) {
    console.log(`keepalive, ${ka.peers} peers probed every 10 s (new TCP connection each), ${ka.windowSeconds} s window: ${ka.probes} probes, ${ka.peersUp} peers up`);
    console.log(`  agent CPU ${ka.agentCpuPercent} % of one core (same agent, same view, nothing to probe: ${ka.idleAgentCpuPercent} %); ${ka.cpuMicrosecondsPerProbe} µs CPU per probe`);
  }
  const k = results.kernel;
  if (!k) {
    // only memory asked for
  } else if (k.skipped) {
    console.log(`kernel: skipped (${k.skipped})`);
  } else {
    const rows = [
      ['kernel driver', `${k.objects.routes} routes + WireGuard (${k.wireguard}) with ${k.objects.peers} peers; medians of ${k.rounds} rounds`, '', ''],
      ['step', 'wall ms', 'processes', 'kernel writes'],
      ['cold apply (weft)', k.coldApplyMs, k.processesCold, k.writesCold],
      ['  floor: one ip -batch + one wg setconf', k.floorMs, 3, '-'],
      ['  baseline: one process per object', k.perObjectMs, 2 * k.objects.routes + 5, '-'],
      ['unchanged re-apply', k.unchangedMs, k.processesUnchanged, k.unchangedWrites],
      ['1 peer + 1 route changed', k.oneChangeMs, k.processesOneChange, k.oneChangeWrites],
      ['cold / floor', `${k.coldVsFloor}x (target <= 1.3x)`, '', ''],
      ['per-object / cold', `${k.perObjectVsCold}x`, '', ''],
    ];
    const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => String(r[i]).length)));
    for (const r of rows) console.log(r.map((c, i) => String(c).padEnd(w[i])).join('  '));
  }
}
