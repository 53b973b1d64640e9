// Keepalive benchmark: the agent's CPU while it probes 1000 simulated peers every 10 s (a new TCP connection per
// probe, underlay plane), beside, in the same run: the same agent with the same 1000-node view and nothing to probe
// (every peer NotReady); the agent reusing its connections (`newConnection: false`); and the floor, a bare Node
// client making the same probes at the same rate (connect, the same GET, read to the end, close) and nothing else.
// The peers are one helper process answering on 1000 loopback addresses. On loopback the kernel's work for both
// ends of a connection is charged to whoever sends, so the floor is what any Node prober pays here.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

const node = process.execPath;
// The agent as the lab and the DaemonSet run it: the bundle, with the Node flags the memory benchmark chose.
const bin = new URL('../dist/weft/weft.mjs', import.meta.url).pathname;
const { AGENT_ENV, AGENT_NODE_FLAGS } = await import('../core/dist/lab/lab.js');
const PEERS = Number(process.env.WEFT_BENCH_PEERS ?? 1000);
const WINDOW_MS = Number(process.env.WEFT_BENCH_WINDOW_MS ?? 30_000);
const PORT = 19_600;
const addr = (i) => `127.10.${Math.floor(i / 250)}.${(i % 250) + 1}`;

/** CPU seconds (user + system) a process has used. */
async function cpuSeconds(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

async function waitReady(port, child) {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null && child.exitCode !== undefined) throw new Error(`agent exited: ${child.exitCode}`);
    if (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('agent not ready');
}

async function agentCpu(dir, ready, httpPort, newConnection = true) {
  const nodes = [{ name: 'self', internalAddresses: ['127.0.0.1'] }, ...Array.from({ length: PEERS }, (_, i) => ({ name: `peer-${i}`, internalAddresses: [addr(i)], ready }))];
  const config = {
    node: { name: 'self', stateDir: join(dir, `state-${ready}`) },
    discovery: { source: 'static', static: { nodes } },
    http: { listen: `127.0.0.1:${httpPort}` },
    log: { level: 'warn', format: 'json' },
    plugins: { keepalive: { port: PORT, listen: '127.0.0.1', interval: '10s', timeout: '2s', planes: ['underlay'], maxPeers: PEERS + 1, newConnection } },
  };
  const file = join(dir, `weft-${ready}-${newConnection}.json.yaml`);
  await writeFile(file, JSON.stringify(config));
  const child = execa(node, [...AGENT_NODE_FLAGS, bin, 'run', '--config', file], { reject: false, env: AGENT_ENV });
  try {
    await waitReady(httpPort, child);
    await new Promise((r) => setTimeout(r, 12_000)); // past the first round (spread over one interval)
    const metrics = async () => (await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).split('\n').filter((l) => l.startsWith('weft_probe_total{')).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);
    // The scrapes (1,000 targets' series) lie outside the window.
    const probes0 = await metrics();
    const cpu0 = await cpuSeconds(child.pid);
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const cpu1 = await cpuSeconds(child.pid);
    const probes1 = await metrics();
    const ok = (await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).split('\n').filter((l) => l.startsWith('weft_probe_up{') && l.endsWith(' 1')).length;
    return { cpuSeconds: cpu1 - cpu0, probes: probes1 - probes0, peersUp: ok };
  } finally {
    child.kill('SIGTERM');
    await child;
  }
}

/** The floor: a bare client probing the same peers at the same rate for the window; its CPU per probe (µs). */
async function floorPerProbe() {
  const script = `
    import { connect } from 'node:net';
    const addr = ${addr.toString()};
    const probe = (i) => new Promise((resolve) => {
      const s = connect({ host: addr(i), port: ${PORT} });
      const chunks = [];
      s.setNoDelay(true);
      s.on('connect', () => s.write('GET / HTTP/1.1\\r\\nHost: ' + addr(i) + '\\r\\nConnection: close\\r\\n\\r\\n'));
      s.on('data', (c) => chunks.push(c));
      s.on('end', () => { s.destroy(); resolve(JSON.parse(Buffer.concat(chunks).toString().split('\\r\\n\\r\\n')[1]).node === 'peer-' + i); });
      s.on('error', () => { s.destroy(); resolve(false); });
    });
    const rate = ${PEERS} / 10; // probes per second, as the agent at a 10 s interval
    const total = Math.round(rate * ${WINDOW_MS} / 1000);
    let sent = 0, ok = 0, done = 0;
    const t0 = process.cpuUsage();
    await new Promise((resolve) => {
      const timer = setInterval(() => {
        for (let k = 0; k < rate / 10 && sent < total; k++) void probe(sent++ % ${PEERS}).then((good) => { ok += good ? 1 : 0; if (++done === total) resolve(); });
        if (sent >= total) clearInterval(timer);
      }, 100);
    });
    const u = process.cpuUsage(t0);
    console.log(JSON.stringify({ probes: done, ok, microseconds: u.user + u.system }));
  `;
  const r = await execa(node, ['--input-type=module', '-e', script], { reject: false });
  if (r.exitCode !== 0) throw new Error(`the floor client failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout);
  return { probes: out.probes, ok: out.ok, cpuMicrosecondsPerProbe: Math.round(out.microseconds / out.probes) };
}

export async function keepaliveBenchmark() {
  const dir = await mkdtemp(join(tmpdir(), 'weft-ka-bench-'));
  // The peers: one process, a probe server on each of PEERS loopback addresses, answering with that peer's name.
  const peers = execa(node, ['--input-type=module', '-e', `
    import { createServer } from 'node:http';
    const addr = ${addr.toString()};
    let listening = 0;
    for (let i = 0; i < ${PEERS}; i++) {
      const body = JSON.stringify({ node: 'peer-' + i, started: 'bench' }) + '\\n';
      createServer((req, res) => res.end(body)).listen(${PORT}, addr(i), () => { if (++listening === ${PEERS}) console.log('ready'); });
    }
  `], { reject: false });
  try {
    await new Promise((resolve, reject) => {
      peers.stdout.on('data', (c) => c.toString().includes('ready') && resolve());
      void peers.then((r) => reject(new Error(`the simulated peers exited: ${r.stderr || r.exitCode}`)));
    });
    const idle = await agentCpu(dir, false, 19_681);
    const busy = await agentCpu(dir, true, 19_682);
    const kept = await agentCpu(dir, true, 19_683, false);
    const floor = await floorPerProbe();
    const extra = busy.cpuSeconds - idle.cpuSeconds;
    const perProbe = busy.probes > 0 ? Math.round((extra / busy.probes) * 1e6) : null;
    return {
      peers: PEERS,
      windowSeconds: WINDOW_MS / 1000,
      probes: busy.probes,
      peersUp: busy.peersUp,
      agentCpuPercent: +((busy.cpuSeconds / (WINDOW_MS / 1000)) * 100).toFixed(2),
      idleAgentCpuPercent: +((idle.cpuSeconds / (WINDOW_MS / 1000)) * 100).toFixed(2),
      cpuMicrosecondsPerProbe: perProbe,
      floorCpuMicrosecondsPerProbe: floor.cpuMicrosecondsPerProbe,
      floorProbesOk: floor.ok,
      ratioToFloor: perProbe === null ? null : +(perProbe / floor.cpuMicrosecondsPerProbe).toFixed(2),
      keptConnections: {
        agentCpuPercent: +((kept.cpuSeconds / (WINDOW_MS / 1000)) * 100).toFixed(2),
        cpuMicrosecondsPerProbe: kept.probes > 0 ? Math.round(((kept.cpuSeconds - idle.cpuSeconds) / kept.probes) * 1e6) : null,
        peersUp: kept.peersUp,
      },
      targetAgentCpuPercent: 3,
    };
  } finally {
    peers.kill('SIGTERM');
    await peers;
    await rm(dir, { recursive: true, force: true });
  }
}
