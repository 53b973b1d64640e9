import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Lab, type LabStatus } from '../core/src/lab/index.js';
import { netnsSkipReason, skipNote } from './support/capabilities.js';
import { labNames } from './support/labs.js';
import './support/builtins.js';
import { until } from './support/until.js';

// The lab on the kubernetes source: the agents watch the lab's API server (the project's fake one, in its own
// namespace on the underlay), publish by patching their Node, and ride out the API server's outage.
const repo = fileURLToPath(new URL('../', import.meta.url));
if (!existsSync(join(repo, 'core/dist/lab/apiserver-main.js'))) throw new Error('core/dist is missing: run npm run build (npm test does) first');
const skip = await netnsSkipReason();
const name = labNames();

const OUTAGE_MS = 120_000;

const podOf = (s: LabStatus, node: string) => s.nodes.find((n) => n.name === node)?.pod as string;
const ping = async (lab: Lab, from: string, to: string) => (await lab.exec(from, ['ping', '-c', '1', '-W', '1', to], { timeoutMs: 10_000 })).exitCode === 0;
const peerKeys = async (lab: Lab, node: string) => (await lab.exec(node, ['wg', 'show', 'weft-wg0', 'peers'])).stdout.split('\n').filter((l) => l.trim() !== '');
const publicKeyOf = async (lab: Lab, node: string) => (await lab.exec(node, ['wg', 'show', 'weft-wg0', 'public-key'])).stdout.trim();
/** GET over an agent's Unix socket. */
const agentGet = (lab: Lab, node: string, path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ socketPath: join(lab.logFile(node), '..', 'http.sock'), path, timeout: 3_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject).on('timeout', () => req.destroy(new Error('timeout'))).end();
  });
/** When (wall ms) a node's agent last logged this message after `since`. */
const loggedAt = (lab: Lab, node: string, msg: string, since: number) =>
  readFileSync(lab.logFile(node), 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        const e = JSON.parse(l) as { msg?: string; time?: string };
        return e.msg === msg && e.time !== undefined && Date.parse(e.time) >= since ? [Date.parse(e.time)] : [];
      } catch {
        return [];
      }
    });

describe.skipIf(skip)(`the lab on the kubernetes source${skipNote(skip)}`, () => {
  it(
    'converges through the API server and patches nothing at rest; a 2-minute outage loses no ping, and what changed meanwhile is caught up right after',
    async () => {
      const lab = await Lab.up({ name: name('kk'), nodes: 4, discovery: 'kubernetes', timeoutMs: 60_000 });
      const s = await lab.status();
      expect(s.converged, s.problems.join('\n')).toBe(true);
      expect(s.api).toMatchObject({ state: 'serving', nodes: 4 });
      for (const n of s.nodes) expect(n.nodesSeen).toBe(4);
      await until('n1:pod → n2:pod', () => ping(lab, 'n1:pod', podOf(s, 'n2')), 30_000);
      const [n3key, n4key] = [await publicKeyOf(lab, 'n3'), await publicKeyOf(lab, 'n4')];

      // n3 leaves before the outage (it comes back during it); n4 is there when it starts (it leaves during it).
      await lab.leave('n3');
      await until('n3 gone from n1, n2 and n4', async () => {
        for (const n of ['n1', 'n2', 'n4']) if ((await peerKeys(lab, n)).includes(n3key)) return false;
        return true;
      }, 20_000);

      // At rest: no Node patch at all (no heartbeat through the API server).
      const patchesBefore = (await lab.apiStatus()).patches as number;
      await new Promise((r) => setTimeout(r, 15_000));
      expect((await lab.apiStatus()).patches).toBe(patchesBefore);

      const count = Math.round((OUTAGE_MS + 12_000) / 100);
      const burst = lab.exec('n1:pod', ['ping', '-i', '0.1', '-c', String(count), '-W', '1', podOf(s, 'n2')], { timeoutMs: count * 100 + 60_000 });
      await new Promise((r) => setTimeout(r, 3_000));
      await lab.apiDown();
      expect((await lab.apiStatus()).state).toBe('down');
      // Ready all along, saying it serves the last view.
      await until('n1 says it is disconnected', async () => {
        const r = await agentGet(lab, 'n1', '/readyz');
        return r.status === 200 && /disconnected since \S+, serving the last view \(3 nodes\)/.test(r.body);
      }, 15_000);
      await lab.leave('n4'); // its Node is deleted while nobody can see it
      await lab.startAgent('n3'); // its Node is created (a kubelet registering), its agent waits for the API
      await new Promise((r) => setTimeout(r, OUTAGE_MS - 20_000));
      expect((await agentGet(lab, 'n2', '/readyz')).status).toBe(200);

      const back = Date.now();
      const t0 = performance.now();
      await lab.apiUp();
      const times: Record<string, number> = {};
      await until('n4 gone from n1 and n2', async () => {
        for (const n of ['n1', 'n2']) if ((await peerKeys(lab, n)).includes(n4key)) return false;
        times.leftGone = performance.now() - t0;
        return true;
      }, 20_000);
      await until('n3 in the config of n1 and n2, and n3 with both', async () => {
        for (const n of ['n1', 'n2']) if (!(await peerKeys(lab, n)).includes(n3key)) return false;
        if ((await peerKeys(lab, 'n3')).length !== 2) return false;
        times.joinedIn = performance.now() - t0;
        return true;
      }, 20_000);
      const relisted = ['n1', 'n2'].map((n) => Math.min(...loggedAt(lab, n, 'the Kubernetes API is back; relisted', back)) - back);
      process.stdout.write(`kubernetes lab, after a ${String(OUTAGE_MS / 1000)} s outage: relisted after ${relisted.join(', ')} ms; left node gone after ${Math.round(times.leftGone ?? -1)} ms; node started during it configured everywhere after ${Math.round(times.joinedIn ?? -1)} ms\n`);
      // Back within a second of the server's return (it was asked every 0.25-0.5 s), not after a backoff.
      for (const ms of relisted) expect(ms).toBeLessThan(1_000);
      // A deletion made during the outage: one hop (the peers' relist, then one reconcile).
      expect(times.leftGone).toBeLessThan(1_500);
      // A node started during the outage: two hops (its own relist and key publish, then its peers').
      expect(times.joinedIn).toBeLessThan(3_000);

      const r = await burst;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
      expect(Number(m?.[1]), r.stdout).toBe(count);
      expect(Number(m?.[2]), r.stdout).toBe(count);
      await until('n3:pod → n1:pod', () => ping(lab, 'n3:pod', podOf(s, 'n1')), 20_000);
      expect((await lab.apiStatus()).state).toBe('serving');
      await lab.down();
    },
    OUTAGE_MS + 240_000,
  );

  it('without any heartbeat: a node whose agent is stopped (WireGuard still forwarding) and a node cut off are told apart from a healthy idle one', async () => {
    const lab = await Lab.up({ name: name('kt'), nodes: 4, discovery: 'kubernetes', timeoutMs: 60_000 });
    const s = await lab.status();
    expect(s.converged, s.problems.join('\n')).toBe(true);
    for (const n of await lab.apiNodes()) expect(Object.keys(n.metadata.annotations ?? {}).filter((k) => k.includes('last-seen'))).toEqual([]);
    await until('n1:pod → n2:pod', () => ping(lab, 'n1:pod', podOf(s, 'n2')), 30_000);

    await lab.killAgent('n2'); // its wireguard-go keeps running
    await lab.cut('n1', 'n3');
    type KeepaliveStatus = { diagnosis: Record<string, string>; results: { target: string; plane: string; up: boolean; result?: string }[] };
    const keepalive = async () => JSON.parse((await agentGet(lab, 'n1', '/api/keepalive/status')).body) as KeepaliveStatus;
    await until('n1 tells n2 (agent stopped) from n3 (cut off)', async () => {
      const d = (await keepalive()).diagnosis;
      return (d.n2 ?? '').startsWith('agent:') && (d.n3 ?? '').startsWith('unreachable:');
    }, 20_000);
    const k = await keepalive();
    expect(k.diagnosis.n4).toBeUndefined(); // healthy and idle: nothing to say
    expect(k.results.filter((r) => r.target === 'n4').every((r) => r.up)).toBe(true);
    expect(k.results.filter((r) => r.target === 'n2' && r.plane !== 'pod').map((r) => r.result)).toEqual(['refused', 'refused']);
    // The stopped agent's node still forwards: it stays in the mesh, its pod answers through the tunnel.
    expect(await ping(lab, 'n1:pod', podOf(s, 'n2'))).toBe(true);
    expect(await peerKeys(lab, 'n1')).toContain(await publicKeyOf(lab, 'n2'));
    await lab.down();
  }, 180_000);
});
