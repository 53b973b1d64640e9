// Kernel driver benchmark: 1000 routes + a WireGuard device with 1000 peers, in fresh network namespaces.
// Cold apply, unchanged re-apply, one peer + one route changed; beside them, in the same run, the floor (one
// hand-written `ip -batch` + one `wg setconf`) and the per-object baseline (one process per object).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { execa } from 'execa';
import { Iproute2Kernel } from '../core/dist/kernel/iproute2.js';
import { generateWireGuardKeyPair } from '../core/dist/kernel/wgkeys.js';

const N = Number(process.env.WEFT_BENCH_OBJECTS ?? 1000);
const OWNER = { name: 'bench', linkPrefix: 'wb', routeProtocol: 190 };

const host = (i) => `${i >> 8}.${i & 255}`;
const self = generateWireGuardKeyPair();
const peers = Array.from({ length: N }, (_, i) => ({
  publicKey: generateWireGuardKeyPair().publicKey,
  endpoint: `192.0.2.${(i % 250) + 1}:51820`,
  allowedIPs: [`100.64.${host(i)}/32`],
}));

function desired(changed) {
  return {
    links: [
      { kind: 'bridge', name: 'wbb0' },
      { kind: 'wireguard', name: 'wbw0' },
    ],
    addresses: [{ dev: 'wbb0', address: '192.0.2.1/24' }],
    routes: Array.from({ length: N }, (_, i) => ({ dst: `198.18.${host(i)}/32`, dev: 'wbb0', ...(changed && i === 0 ? { src: '192.0.2.1' } : {}) })),
    wireguard: [
      {
        name: 'wbw0',
        privateKey: self.privateKey,
        listenPort: 51820,
        peers: peers.map((p, i) => (changed && i === 0 ? { ...p, allowedIPs: [...p.allowedIPs, '198.19.0.0/24'] } : p)),
      },
    ],
  };
}

async function netns(label) {
  const name = `weft-bench-${label}-${process.pid}`;
  await execa('ip', ['netns', 'add', name]);
  await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}
// Links go first: a wireguard-go device keeps its process, and with it the namespace, alive.
async function drop(name) {
  const links = await execa('ip', ['-n', name, '-j', 'link', 'show'], { reject: false });
  for (const l of JSON.parse(links.stdout || '[]')) if (l.ifname !== 'lo') await execa('ip', ['-n', name, 'link', 'del', l.ifname], { reject: false });
  await execa('ip', ['netns', 'del', name], { reject: false });
}

async function timed(fn) {
  const t = performance.now();
  const result = await fn();
  return { ms: performance.now() - t, result };
}

async function driverRuns() {
  const ns = await netns('d');
  let processes = 0;
  const kernel = new Iproute2Kernel(
    { kind: 'named', name: ns },
    {
      runner: async (file, args, input) => {
        processes += 1;
        const r = await execa(file, args, { input, reject: false, stripFinalNewline: true, maxBuffer: 1e9 });
        return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? 1 };
      },
    },
  );
  await kernel.wireguardImplementation();
  const step = async (state) => {
    processes = 0;
    const { ms, result } = await timed(() => kernel.apply(OWNER, state));
    return { ms, writes: result.changes.length, processes };
  };
  try {
    const cold = await step(desired(false));
    const unchanged = await step(desired(false));
    const oneChange = await step(desired(true));
    return { cold, unchanged, oneChange, implementation: await kernel.wireguardImplementation() };
  } finally {
    await drop(ns);
  }
}

async function createWireGuard(ns, implementation) {
  if (implementation === 'kernel') await execa('ip', ['-n', ns, 'link', 'add', 'wbw0', 'type', 'wireguard']);
  else await execa('ip', ['netns', 'exec', ns, 'wireguard-go', 'wbw0']);
}

async function floorRun(implementation) {
  const ns = await netns('f');
  try {
    const { ms } = await timed(async () => {
      await createWireGuard(ns, implementation);
      const lines = ['link add name wbb0 type bridge', 'link set dev wbb0 up', 'link set dev wbw0 up', 'address replace 192.0.2.1/24 dev wbb0'];
      for (let i = 0; i < N; i++) lines.push(`route replace 198.18.${host(i)}/32 dev wbb0 proto 190`);
      await execa('ip', ['-n', ns, '-batch', '-'], { input: `${lines.join('\n')}\n` });
      const conf = [`[Interface]`, `PrivateKey = ${self.privateKey}`, 'ListenPort = 51820'];
      for (const p of peers) conf.push('[Peer]', `PublicKey = ${p.publicKey}`, `AllowedIPs = ${p.allowedIPs.join(',')}`, `Endpoint = ${p.endpoint}`);
      // Node's stdio is a socket, which wg cannot open as /dev/stdin: hand it a private file, as the driver does.
      await writeFile(join(secrets, 'wg.conf'), `${conf.join('\n')}\n`, { mode: 0o600 });
      await execa('ip', ['netns', 'exec', ns, 'wg', 'setconf', 'wbw0', join(secrets, 'wg.conf')]);
    });
    return ms;
  } finally {
    await drop(ns);
  }
}

async function perObjectRun(implementation) {
  const ns = await netns('p');
  try {
    const { ms } = await timed(async () => {
      await createWireGuard(ns, implementation);
      await execa('ip', ['-n', ns, 'link', 'add', 'name', 'wbb0', 'type', 'bridge']);
      await execa('ip', ['-n', ns, 'link', 'set', 'dev', 'wbb0', 'up']);
      await execa('ip', ['-n', ns, 'link', 'set', 'dev', 'wbw0', 'up']);
      await execa('ip', ['-n', ns, 'address', 'replace', '192.0.2.1/24', 'dev', 'wbb0']);
      for (let i = 0; i < N; i++) await execa('ip', ['-n', ns, 'route', 'replace', `198.18.${host(i)}/32`, 'dev', 'wbb0', 'proto', '190']);
      await writeFile(join(secrets, 'key'), `${self.privateKey}\n`, { mode: 0o600 });
      await execa('ip', ['netns', 'exec', ns, 'wg', 'set', 'wbw0', 'private-key', join(secrets, 'key'), 'listen-port', '51820']);
      for (const p of peers) {
        await execa('ip', ['netns', 'exec', ns, 'wg', 'set', 'wbw0', 'peer', p.publicKey, 'allowed-ips', p.allowedIPs.join(','), 'endpoint', p.endpoint]);
      }
    });
    return ms;
  } finally {
    await drop(ns);
  }
}

let secrets;

export async function kernelBenchmark() {
  if (process.getuid?.() !== 0) return { skipped: 'needs root (network namespaces)' };
  secrets = await mkdtemp(join(tmpdir(), 'weft-bench-'));
  try {
    return await measure();
  } finally {
    await rm(secrets, { recursive: true, force: true });
  }
}

const ROUNDS = Number(process.env.WEFT_BENCH_ROUNDS ?? 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure() {
  // The machine is shared and noisy: weft and the floor alternate, ROUNDS times each, and medians are reported.
  const runs = [];
  const floors = [];
  for (let r = 0; r < ROUNDS; r++) {
    runs.push(await driverRuns());
    floors.push(await floorRun(runs[0].implementation));
  }
  const pick = (step) => {
    const ms = median(runs.map((x) => x[step].ms));
    const run = runs.find((x) => x[step].ms === ms);
    return run[step];
  };
  const driver = { implementation: runs[0].implementation, cold: pick('cold'), unchanged: pick('unchanged'), oneChange: pick('oneChange') };
  const floorMs = median(floors);
  const perObjectMs = await perObjectRun(driver.implementation);
  return {
    objects: { routes: N, peers: N },
    rounds: ROUNDS,
    wireguard: driver.implementation,
    coldApplyMs: Math.round(driver.cold.ms),
    floorMs: Math.round(floorMs),
    perObjectMs: Math.round(perObjectMs),
    coldVsFloor: Number((driver.cold.ms / floorMs).toFixed(2)),
    perObjectVsCold: Number((perObjectMs / driver.cold.ms).toFixed(1)),
    processesCold: driver.cold.processes,
    writesCold: driver.cold.writes,
    unchangedMs: Math.round(driver.unchanged.ms),
    unchangedWrites: driver.unchanged.writes,
    processesUnchanged: driver.unchanged.processes,
    oneChangeMs: Math.round(driver.oneChange.ms),
    oneChangeWrites: driver.oneChange.writes,
    processesOneChange: driver.oneChange.processes,
  };
}
