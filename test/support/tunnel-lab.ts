import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { httpGet } from '../../core/src/observe/http-get.js';
import type { Lab } from '../../core/src/lab/index.js';
import { until } from './until.js';

// What the service-tunnel lab tests (GRE, MPLS) share: the echo servers in the pods, the outside client, the plugin's
// status on each node, long-lived streams across a change, and what to keep when a case fails.

const ECHO = fileURLToPath(new URL('./tunnel-echo.mjs', import.meta.url));

/** One long-lived stream's story: the pods that answered it (one, if it never moved), or how it broke. */
export interface Stream {
  readonly pods: string[];
  readonly error?: string;
}

export interface TunnelEndpointStatus {
  readonly address: string;
  readonly state: string;
  readonly buckets: number;
  readonly packets: number;
  readonly label?: number;
  readonly node?: string;
}
export interface TunnelVipStatus {
  readonly vip: string;
  readonly seed: string;
  readonly endpoints: readonly TunnelEndpointStatus[];
}
export interface TunnelStatus {
  readonly converged: boolean;
  readonly vips: readonly TunnelVipStatus[];
  readonly pods: readonly { readonly address: string; readonly state: string; readonly label?: number }[];
  readonly refused: readonly { readonly name: string; readonly reason: string }[];
  readonly unused: readonly { readonly address: string; readonly node: string; readonly reason: string }[];
}

export class TunnelLab {
  private readonly servers = new Map<string, ChildProcess>();

  constructor(
    readonly lab: Lab,
    readonly o: { readonly plugin: string; readonly vip: string; readonly port: string; readonly ingress: readonly string[] },
  ) {}

  /** Starts (again) the echo server of a pod (`n3:pod`). */
  serve(pod: string): void {
    const argv = this.lab.enter(pod, [process.execPath, ECHO, 'serve', pod, this.o.port, this.o.vip]);
    this.servers.get(pod)?.kill('SIGKILL');
    this.servers.set(pod, spawn(argv[0] as string, argv.slice(1), { stdio: 'ignore' }));
  }

  stopServer(pod: string): void {
    this.servers.get(pod)?.kill('SIGKILL');
    this.servers.delete(pod);
  }

  stopServers(): void {
    for (const s of this.servers.values()) s.kill('SIGKILL');
    this.servers.clear();
  }

  /** A node's status of the plugin; while the plugin is (re)starting, one with nothing in it. */
  async status(node: string): Promise<TunnelStatus> {
    const r = await httpGet({ socket: join(this.lab.dir, node, 'http.sock') }, `/api/${this.o.plugin}/status`, 5000).catch(() => ({ status: 0, body: '' }));
    const s = (r.status === 200 ? JSON.parse(r.body) : {}) as Partial<TunnelStatus>;
    return { converged: s.converged ?? false, vips: s.vips ?? [], pods: s.pods ?? [], refused: s.refused ?? [], unused: s.unused ?? [] };
  }

  /** The echo client, run in the outside client's namespace. */
  async client(args: string[]): Promise<string> {
    return (await this.lab.exec('client', [process.execPath, ECHO, ...args], { timeoutMs: 120_000 })).stdout.trim();
  }

  /** Waits until every ingress node routes the VIP to these endpoints in these states. */
  async ingressSees(what: string, want: Record<string, string>): Promise<void> {
    await until(
      what,
      async () => {
        for (const n of this.o.ingress) {
          const v = (await this.status(n).catch(() => undefined))?.vips.find((x) => x.vip === this.o.vip);
          const seen = Object.fromEntries((v?.endpoints ?? []).map((e) => [e.address, e.state]));
          if (JSON.stringify(seen) !== JSON.stringify(want)) return false;
        }
        return true;
      },
      120_000,
    );
  }

  /** Opens n long-lived streams from the client; `during` runs once every stream has an answer; then each stream's story. */
  async streams(n: number, during: () => Promise<void>): Promise<Stream[]> {
    const argv = this.lab.enter('client', [process.execPath, ECHO, 'streams', this.o.vip, this.o.port, String(n)]);
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout });
    const out: Stream[] = [];
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    lines.on('line', (line) => {
      if (line === 'ready') ready();
      else if (line.startsWith('{')) out.push(JSON.parse(line) as Stream);
    });
    const ended = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await Promise.race([isReady, new Promise((_, reject) => setTimeout(() => reject(new Error(`${String(n)} streams: not all answered in 60 s`)), 60_000))]);
      await during();
      // Traffic across the change for a while (every stream asks every 200 ms).
      await new Promise((r) => setTimeout(r, 4000));
      child.stdin.write('stop\n');
      await ended;
    } finally {
      child.kill('SIGKILL');
    }
    return out;
  }

  /** Sets a key of a node's config (every node's when `nodes` is absent); the agents reload it. */
  async configure(path: readonly string[], value: unknown, nodes: readonly string[] = this.lab.topology.nodes.map((n) => n.name)): Promise<void> {
    for (const name of nodes) {
      const file = join(this.lab.dir, name, 'weft.yaml');
      const doc = parseDocument(await readFile(file, 'utf8'));
      doc.setIn(path, value);
      await writeFile(`${file}.new`, doc.toString(), { mode: 0o600 });
      await rename(`${file}.new`, file);
    }
  }

  /** Sets a key of the plugin's section on every node. */
  async configureAll(key: string, value: unknown): Promise<void> {
    await this.configure(['plugins', this.o.plugin, key], value);
  }

  /** A pod's address (`n3:pod`). */
  addressOf(pod: string): string {
    const [node, name] = pod.split(':');
    return this.lab.topology.nodes.find((n) => n.name === node)?.pods.find((x) => x.name === name)?.address ?? '?';
  }

  /** The endpoints by address, sorted as the status lists them, all active. */
  addresses(pods: readonly string[]): Record<string, string> {
    return Object.fromEntries(pods.map((p) => this.addressOf(p)).sort().map((a) => [a, 'active']));
  }

  /** What the kernel and the agents had when a case failed: test-results/<dir>/<case>.txt. */
  async keepDiagnostics(dir: string, caseName: string, commands: readonly (readonly [string, readonly string[]])[]): Promise<void> {
    const out: string[] = [];
    for (const [target, cmd] of commands) out.push(`## ${target}: ${cmd.join(' ')}`, (await this.lab.exec(target, [...cmd]).catch((e: unknown) => ({ stdout: String(e), stderr: '' }))).stdout);
    for (const n of this.o.ingress) out.push(`## ${n} status`, JSON.stringify(await this.status(n)));
    for (const n of this.lab.topology.nodes) out.push(`## ${n.name} log`, (await readFile(this.lab.logFile(n.name), 'utf8').catch(() => '')).split('\n').filter((l) => /"level":(40|50)/.test(l)).slice(-40).join('\n'));
    const dirOut = fileURLToPath(new URL(`../../test-results/${dir}/`, import.meta.url));
    await mkdir(dirOut, { recursive: true });
    await writeFile(join(dirOut, `${caseName.slice(0, 40).replace(/[^a-z0-9]+/gi, '-')}.txt`), out.join('\n'));
  }
}
