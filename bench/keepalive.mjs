// Keepalive benchmark: the agent's CPU while it probes 1000 simulated peers every 10 s (a new TCP connection per
// probe, underlay plane), beside the same agent with the same 1000-node view and nothing to probe (every peer
// NotReady), in the same run. The peers are one helper process answering on 1000 loopback addresses.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

const node = process.execPath;
const bin = new URL('../core/bin/weft.js', import.meta.url).pathname;
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

async function agentCpu(dir, ready, httpPort) {
  const nodes = [{ name: 'self', internalAddresses: ['127.0.0.1'] }, ...Array.from({ length: PEERS }, (_, i) => ({ name: `peer-${i}`, internalAddresses: [addr(i)], ready }))];
  const config = {
    node: { name: 'self', stateDir: join(dir, `state-${ready}`) },
    discovery: { source: 'static', static: { nodes } },
    http: { listen: `127.0.0.1:${httpPort}` },
    log: { level: 'warn', format: 'json' },
    plugins: { keepalive: { port: PORT, listen: '127.0.0.1', interval: '10s', timeout: '2s', planes: ['underlay'], maxPeers: PEERS + 1 } },
  };
  const file = join(dir, `weft-${ready}.json.yaml`);
  await writeFile(file, JSON.stringify(config));
  const child = execa(node, [bin, 'run', '--config', file], { reject: false });
  try {
    await waitReady(httpPort, child);
    await new Promise((r) => setTimeout(r, 12_000)); // past the first round (spread over one interval)
    const metrics = async () => (await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).split('\n').filter((l) => l.startsWith('weft_probe_total{')).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);
    const [cpu0, probes0] = [await cpuSeconds(child.pid), await metrics()];
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const [cpu1, probes1] = [await cpuSeconds(child.pid), await metrics()];
    const ok = (await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).split('\n').filter((l) => l.startsWith('weft_probe_up{') && l.endsWith(' 1')).length;
    return { cpuSeconds: cpu1 - cpu0, probes: probes1 - probes0, peersUp: ok };
  } finally {
    child.kill('SIGTERM');
    await child;
  }
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
    const extra = busy.cpuSeconds - idle.cpuSeconds;
    return {
      peers: PEERS,
      windowSeconds: WINDOW_MS / 1000,
      probes: busy.probes,
      peersUp: busy.peersUp,
      agentCpuPercent: +((busy.cpuSeconds / (WINDOW_MS / 1000)) * 100).toFixed(2),
      idleAgentCpuPercent: +((idle.cpuSeconds / (WINDOW_MS / 1000)) * 100).toFixed(2),
      cpuMicrosecondsPerProbe: busy.probes > 0 ? Math.round((extra / busy.probes) * 1e6) : null,
    };
  } finally {
    peers.kill('SIGTERM');
    await peers;
    await rm(dir, { recursive: true, force: true });
  }
}
