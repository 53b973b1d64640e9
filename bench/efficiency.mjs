// What an agent costs on every node, measured on the lab's agents (3 nodes, directory source, wireguard + keepalive
// at the lab's settings): idle CPU, CPU per unrelated Node change, own-document writes per minute, VmRSS.
//
// Unrelated change: a bystander node's document (NotReady, no WireGuard key: neither plugin has anything to do with
// it) gets a new `example.com/counter` annotation four times a second. Its cost is the agent's CPU in that window
// minus its CPU in an idle window of the same length just before, divided by the changes written, on n1's agent.
// `--quick` shortens both windows (the figures get noisier, and the output says so).
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';

const ticks = 100; // USER_HZ on Linux

function agentUsage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { cpuSeconds: (Number(fields[11]) + Number(fields[12])) / ticks, rssMiB: Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024 };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function efficiencyBenchmark(options = {}) {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (the lab)' };
  const quick = options.quick === true;
  const windowS = quick ? 10 : 30;
  const { Lab } = await import('../core/dist/lab/index.js');
  const name = `be${String(process.pid % 100000)}`;
  try {
    const lab = await Lab.up({ name, nodes: 3, timeoutMs: 60_000 });
    const record = JSON.parse(readFileSync(join(lab.dir, 'lab.json'), 'utf8'));
    const pid = record.agents.n1.pid;
    const bystander = join(lab.dir, 'nodes', 'zz-bystander.yaml');
    const write = (i) => writeFileSync(bystander, `name: zz-bystander\nready: false\ninternalAddresses: [198.18.1.250]\nannotations:\n  example.com/counter: "${String(i)}"\n`);
    write(0);
    await sleep(5000); // the bystander is known everywhere; the lab settles

    const own = join(lab.dir, 'nodes', 'n1.yaml');
    let writes = 0;
    let lastMtime = statSync(own).mtimeMs;
    const countWrites = () => {
      const m = statSync(own).mtimeMs;
      if (m !== lastMtime) writes++;
      lastMtime = m;
    };

    // Idle window: nothing changes but what the agents do themselves.
    const idle0 = agentUsage(pid);
    for (let s = 0; s < windowS; s++) {
      await sleep(1000);
      countWrites();
    }
    const idle1 = agentUsage(pid);
    const idleWrites = writes;

    // Change window: four unrelated changes a second.
    const changes = windowS * 4;
    for (let i = 1; i <= changes; i++) {
      write(i);
      await sleep(250);
    }
    const busy1 = agentUsage(pid);
    const idleCpu = idle1.cpuSeconds - idle0.cpuSeconds;
    const busyCpu = busy1.cpuSeconds - idle1.cpuSeconds;
    return {
      quick,
      windowSeconds: windowS,
      idleCpuSecondsPerMinute: Math.round((idleCpu / windowS) * 60 * 1000) / 1000,
      unrelatedChangeCpuMs: Math.round(((busyCpu - idleCpu) / changes) * 1000 * 100) / 100,
      ownDocumentWritesPerMinute: Math.round((idleWrites / windowS) * 60 * 10) / 10,
      rssMiB: Math.round(busy1.rssMiB * 10) / 10,
      note: 'directory source (the lab cannot run the kubernetes source yet); CPU by /proc, 10 ms ticks: ± 10 ms per window',
    };
  } finally {
    await Lab.down(name);
  }
}
