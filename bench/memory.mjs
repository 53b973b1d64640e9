// The agent's resident memory once it is ready: with the directory source (the lab's), and with the kubernetes
// source against an in-process API server (also with the runtime flags docs/discovery.md recommends), beside a bare
// Node process, in the same run; and the bundle (dist/weft/weft.mjs), bare and with the DaemonSet's Node flags
// (AGENT_NODE_FLAGS), and its startup snapshot (dist/weft/weft.blob, what the lab and the image start from) with them. VmRSS, and its private part (RssAnon): the rest is the node executable's own pages,
// file-backed, clean and reclaimable.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '../core/dist/lab/index.js';
import { startFakeApiServer } from '../core/dist/testing/index.js';

const node = process.execPath;
const bin = new URL('../distribution/bin/weft.js', import.meta.url).pathname;
const bundle = new URL('../dist/weft/weft.mjs', import.meta.url).pathname;
const snapshot = new URL('../dist/weft/weft.blob', import.meta.url).pathname;

async function rssMiB(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Math.round(Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)[1]) / 1024);
  return { rss: field('VmRSS'), anon: field('RssAnon') };
}

async function waitReady(port, child) {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== undefined && child.exitCode !== null) throw new Error(`agent exited: ${child.exitCode}`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('agent not ready');
}

async function agentRss(config, port, flags = [], entry = [bin], env = {}) {
  const child = execa(node, [...flags, ...entry, 'run', '--config', config], { reject: false, env: { ...env, NODE_NAME: 'n1' } });
  try {
    await waitReady(port, child);
    await new Promise((r) => setTimeout(r, 1500)); // settle: the first reconciles and GC
    return await rssMiB(child.pid);
  } finally {
    child.kill('SIGTERM');
    await child;
  }
}

export async function memoryBenchmark() {
  const dir = await mkdtemp(join(tmpdir(), 'weft-mem-'));
  const server = await startFakeApiServer();
  try {
    server.put('nodes', { metadata: { name: 'n1', annotations: {} }, status: { conditions: [{ type: 'Ready', status: 'True' }] } });
    await writeFile(join(dir, 'kubeconfig'), server.kubeconfig());
    const base = ['node: {name: n1, stateDir: ' + join(dir, 'state') + '}', 'log: {level: warn, format: json}', 'plugins: {}'];
    await writeFile(join(dir, 'k8s.yaml'), [...base, `discovery: {source: kubernetes, kubernetes: {kubeconfig: ${join(dir, 'kubeconfig')}}}`, 'http: {listen: "127.0.0.1:19471"}', ''].join('\n'));
    await writeFile(join(dir, 'dir.yaml'), [...base, `discovery: {source: directory, directory: {path: ${join(dir, 'nodes')}}}`, 'http: {listen: "127.0.0.1:19472"}', ''].join('\n'));
    const bare = execa(node, ['-e', 'setTimeout(() => {}, 3000)'], { reject: false });
    await new Promise((r) => setTimeout(r, 500));
    const bareMiB = await rssMiB(bare.pid);
    bare.kill();
    await bare;
    return {
      bareNodeMiB: bareMiB,
      directoryMiB: await agentRss(join(dir, 'dir.yaml'), 19472),
      kubernetesMiB: await agentRss(join(dir, 'k8s.yaml'), 19471),
      kubernetesFlagsMiB: await agentRss(join(dir, 'k8s.yaml'), 19471, ['--max-semi-space-size=1']),
      bundleMiB: await agentRss(join(dir, 'k8s.yaml'), 19471, [], [bundle]),
      bundleFlagsMiB: await agentRss(join(dir, 'k8s.yaml'), 19471, [...AGENT_NODE_FLAGS], [bundle], AGENT_ENV),
      snapshotFlagsMiB: await agentRss(join(dir, 'k8s.yaml'), 19471, [...AGENT_NODE_FLAGS], ['--snapshot-blob', snapshot], AGENT_ENV),
      bundleFlags: AGENT_NODE_FLAGS.join(' '),
      targetMiB: 64,
    };
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}
