// What an agent costs on every node, measured on lab agents in the DaemonSet's configuration: the kubernetes source
// (the lab's API server), wireguard (full mesh) and keepalive, every setting at its default (resync 30 s, heartbeat
// 30 s, keepalive every 10 s). Figures (the names are read by other tools; keep them):
//
// - idleCpuSecondsPerMinute: n1's agent CPU in an idle window; idleCpuSecondsPerMinuteWireguardOnly: the same with
//   wireguard alone (a second lab);
// - noopReconcileCpuMs: wireguard alone with `heartbeat: 1s` (a no-op reconcile every second), its CPU minus the
//   idle window's (default heartbeat), over the reconciles it ran beyond the idle window's;
// - unrelatedChangeCpuMs: a bystander Node (NotReady, no WireGuard key: nothing for either plugin) gets a new
//   `example.com/counter` annotation four times a second; the window's CPU minus the idle window's, per change;
// - nodePatchesPerMinute: Node PATCH requests the API server got in the idle window, per node per minute;
// - joinMedianMs: agent process start -> the new node has a handshake with every peer (its WireGuard device removed
//   first, as on a fresh node), median of several joins; joinMedianMsDirectory: the same on the directory source;
// - rssMiB, rssSlopeMiBPerMin: n1's VmRSS at the end of a soak in which n3 leaves and joins again and again (30
//   minutes, 50 cycles; --quick: 4 minutes, 8 cycles), and the least-squares slope over its last two thirds.
//
// CPU: the agent's own from its metrics (process.cpuUsage, microseconds) and that of the programs it ran from /proc
// (cutime + cstime, 10 ms ticks). `--quick` shortens every window and says so.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import './builtins.mjs';

const ticks = 100; // USER_HZ on Linux
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const round = (x, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export function usage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  // utime + stime + cutime + cstime: the processes the agent ran (ip, wg) count too, once it has waited for them.
  return {
    cpuSeconds: (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / ticks,
    rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024,
    // The private part: the rest of VmRSS is the node executable's pages (shared, clean, reclaimable).
    rssAnonMiB: Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024,
  };
}

/**
 * An agent's CPU seconds to the microsecond: its own from its metrics (process.cpuUsage, every thread), plus what the
 * programs it ran used (/proc cutime + cstime, 10 ms ticks; nothing in a steady state that starts no process). /proc's
 * own utime + stime count in 10 ms ticks, too coarse for a window of a few hundred milliseconds of work.
 */
export async function preciseCpu(lab, node, pid) {
  const own = Number(/^process_cpu_seconds_total (\S+)$/m.exec(await agentMetrics(lab, node))?.[1] ?? NaN);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return own + (Number(fields[13]) + Number(fields[14])) / ticks;
}

/** Least-squares slope of y over x. */
export function slope(points) {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const sxx = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return sxx === 0 ? 0 : points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0) / sxx;
}

export const agentPid = (lab, node) => JSON.parse(readFileSync(join(lab.dir, 'lab.json'), 'utf8')).agents[node].pid;

/** An agent's /metrics text (over its Unix socket, with curl-free node:http). */
export async function agentMetrics(lab, node) {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(lab.dir, node, 'http.sock'), path: '/metrics', timeout: 5000 }, (res) => {
      let b = '';
      res.setEncoding('utf8').on('data', (c) => (b += c)).on('end', () => resolve(b));
    });
    req.on('error', reject).end();
  });
}

/** Reconciles a plugin ran, from the agent's metrics. */
export async function reconciles(lab, node, plugin) {
  const body = await agentMetrics(lab, node);
  let total = 0;
  for (const m of body.matchAll(new RegExp(`^weft_reconcile_total\\{[^}]*plugin="${plugin}"[^}]*\\} (\\d+)`, 'gm'))) total += Number(m[1]);
  return total;
}

export async function config(dir, plugins, resync = '30s') {
  const file = join(dir, `${Object.keys(plugins).join('-')}.yaml`);
  // Every setting at its default, as the DaemonSet runs: the lab's short resync is replaced by the default.
  await writeFile(file, `reconcile: { resync: ${resync} }\nplugins:\n${Object.entries(plugins).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join('\n')}\n`);
  return file;
}

/** Agent start -> a handshake with every peer, on a node whose device is gone (a fresh node). */
async function join1(lab, node, peers) {
  await lab.leave(node);
  await lab.exec(node, ['ip', 'link', 'del', 'weft-wg0']);
  const others = lab.topology.nodes.filter((n) => n.name !== node).map((n) => n.name);
  for (let i = 0; i < 200; i++) {
    const still = await Promise.all(others.map(async (o) => (await lab.exec(o, ['wg', 'show', 'weft-wg0', 'peers'])).stdout.trim().split('\n').filter(Boolean).length));
    if (still.every((c) => c === peers - 1)) break;
    await sleep(100);
  }
  // The node registers first (its Node object: the kubelet's part, before the DaemonSet's pod starts), and its peers
  // have seen it: the clock starts with the agent.
  await lab.register(node);
  await sleep(500);
  const started = performance.now();
  await lab.startAgent(node);
  for (let i = 0; i < 2000; i++) {
    const r = await lab.exec(node, ['wg', 'show', 'weft-wg0', 'latest-handshakes'], { timeoutMs: 5000 });
    const done = r.stdout.trim().split('\n').filter((l) => Number(l.split('\t')[1]) > 0).length;
    if (done >= peers) return performance.now() - started;
    await sleep(10);
  }
  return NaN;
}

/** A lab with wireguard alone (full mesh, `extra` settings): n1's CPU and wireguard reconciles over a window. */
export async function wireguardAlone(Lab, name, dir, extra, windowS) {
  const lab = await Lab.up({ name, nodes: 3, discovery: 'kubernetes', config: await config(dir, { wireguard: { granularity: 'full', ...extra } }), timeoutMs: 60_000 });
  try {
    // Past the start's own work (the first resync, the monitor's first trusted read, the peers' publishing): idle is
    // the steady state.
    await sleep(40_000);
    const pid = agentPid(lab, 'n1');
    const r0 = await reconciles(lab, 'n1', 'wireguard');
    const c0 = await preciseCpu(lab, 'n1', pid);
    await sleep(windowS * 1000);
    const c1 = await preciseCpu(lab, 'n1', pid);
    return { cpuSeconds: c1 - c0, reconciles: (await reconciles(lab, 'n1', 'wireguard')) - r0 };
  } finally {
    await lab.down();
  }
}

export async function efficiencyBenchmark(options = {}) {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (the lab)' };
  const quick = options.quick === true;
  const windowS = quick ? 30 : 120;
  const joins = quick ? 3 : 7;
  const soakS = quick ? 240 : 1800;
  const cycles = quick ? 8 : 50;
  const { Lab } = await import('../core/dist/lab/index.js');
  const { labNodeObject } = await import('../core/dist/lab/lab.js');
  const { labApiControl } = await import('../core/dist/lab/apiserver.js');
  const dir = await mkdtemp(join(tmpdir(), 'weft-bench-eff-'));
  const name = `be${String(process.pid % 100000)}`;
  const out = { quick, windowSeconds: windowS, soakSeconds: soakS, soakCycles: cycles, configuration: 'kubernetes source, wireguard (full mesh) + keepalive, defaults' };
  try {
    // 1. The DaemonSet's configuration.
    const lab = await Lab.up({ name, nodes: 3, discovery: 'kubernetes', config: await config(dir, { wireguard: { granularity: 'full' }, keepalive: {} }), timeoutMs: 60_000 });
    const control = (method, path, body) => labApiControl(join(lab.dir, 'api.sock'), method, path, body);
    const bystander = (i) => {
      const o = labNodeObject({ ...lab.topology.nodes[0], name: 'zz-bystander', underlay: '198.18.1.250', podCIDR: '198.19.250.0/24', natAddress: undefined });
      o.metadata.annotations = { 'example.com/counter': String(i) };
      o.status.conditions = [{ type: 'Ready', status: 'False' }];
      return control('PUT', '/nodes/zz-bystander', o);
    };
    await bystander(0);
    await sleep(10_000);
    const pid = agentPid(lab, 'n1');
    const p0 = (await lab.apiStatus()).patches;
    const idle0 = await preciseCpu(lab, 'n1', pid);
    await sleep(windowS * 1000);
    const idle1 = await preciseCpu(lab, 'n1', pid);
    const p1 = (await lab.apiStatus()).patches;
    const changes = windowS * 4;
    const busyStart = performance.now();
    for (let i = 1; i <= changes; i++) {
      await bystander(i);
      await sleep(250);
    }
    const busy1 = await preciseCpu(lab, 'n1', pid);
    const busyS = (performance.now() - busyStart) / 1000;
    const idleCpu = idle1 - idle0;
    out.idleCpuSecondsPerMinute = round((idleCpu / windowS) * 60, 3);
    // The busy window's own length (the changes take a little longer than windowS): its idle share by that length.
    out.unrelatedChangeCpuMs = round(((busy1 - idle1 - (idleCpu * busyS) / windowS) / changes) * 1000);
    out.nodePatchesPerMinute = round(((p1 - p0) / 3 / windowS) * 60);
    await control('DELETE', '/nodes/zz-bystander');

    const joinTimes = [];
    for (let i = 0; i < joins; i++) joinTimes.push(await join1(lab, 'n3', 2));
    out.joinMedianMs = Math.round(median(joinTimes));
    out.joinTrialsMs = joinTimes.map(Math.round);

    // Soak: n3 leaves and joins again, `cycles` times; n1's VmRSS sampled every 10 s.
    const samples = [];
    const start = performance.now();
    const every = (soakS * 1000) / cycles;
    let next = every / 2;
    let cycle = 0;
    while (performance.now() - start < soakS * 1000) {
      const t = performance.now() - start;
      if (t >= next && cycle < cycles) {
        await lab.leave('n3');
        await sleep(3000);
        await lab.startAgent('n3');
        cycle++;
        next += every;
      }
      const u = usage(pid);
      samples.push([(performance.now() - start) / 60_000, u.rssMiB, u.rssAnonMiB]);
      await sleep(Math.min(10_000, Math.max(100, next - (performance.now() - start))));
    }
    const tail = samples.filter(([m]) => m >= soakS / 60 / 3);
    out.rssMiB = round(samples.at(-1)[1], 1);
    out.rssAnonMiB = round(usage(pid).rssAnonMiB, 1);
    out.rssMaxMiB = round(Math.max(...samples.map((s) => s[1])), 1);
    out.rssSlopeMiBPerMin = round(slope(tail), 3);
    out.rssAfterMinutes = round(samples.at(-1)[0], 1);
    // The soak as it went: one sample per minute, [minute, VmRSS, RssAnon].
    out.rssTrace = samples.filter((x, i) => i === 0 || Math.floor(x[0]) > Math.floor(samples[i - 1][0])).map(([m, r, an]) => [round(m, 1), round(r, 1), round(an, 1)]);
    await lab.down();

    // 2. wireguard alone, idle: its CPU per minute.
    const quiet = await wireguardAlone(Lab, name, dir, {}, windowS);
    out.idleCpuSecondsPerMinuteWireguardOnly = round((quiet.cpuSeconds / windowS) * 60, 3);

    // 3. The no-op reconcile: wireguard alone with a heartbeat every second (a no-op reconcile each), against the
    // idle window above — the difference in CPU over the difference in reconciles.
    const busy = await wireguardAlone(Lab, name, dir, { heartbeat: '1s' }, windowS);
    const extraRuns = busy.reconciles - quiet.reconciles;
    out.noopReconciles = busy.reconciles;
    out.noopReconcileCpuMs = extraRuns > 0 ? round(((busy.cpuSeconds - quiet.cpuSeconds) / extraRuns) * 1000) : null;

    // 4. The join on the directory source, for comparison.
    const d = await Lab.up({ name, nodes: 3, config: await config(dir, { wireguard: { granularity: 'full' }, keepalive: {} }), timeoutMs: 60_000 });
    const dirTimes = [];
    for (let i = 0; i < joins; i++) dirTimes.push(await join1(d, 'n3', 2));
    out.joinMedianMsDirectory = Math.round(median(dirTimes));
    out.joinTrialsMsDirectory = dirTimes.map(Math.round);
    out.targets = { joinMedianMs: 350, rssMiB: 80, rssSlopeMiBPerMin: 0, noopReconcileCpuMs: 1.8, unrelatedChangeCpuMs: 0.6, idleCpuSecondsPerMinuteWireguardOnly: 0.05, nodePatchesPerMinute: 0 };
    out.note = `CPU: the agent's own by process.cpuUsage (its metrics), the programs it ran by /proc (10 ms ticks)${quick ? '; --quick: 30 s windows and a 4-minute soak instead of 2 minutes and 30, noisier' : ''}`;
    return out;
  } finally {
    await Lab.down(name);
    await rm(dir, { recursive: true, force: true });
  }
}
