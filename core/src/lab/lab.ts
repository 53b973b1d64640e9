import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { cpus as cpuList } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parseDocument, stringify } from 'yaml';
import { loadConfigText, readConfigFile } from '../config/load.js';
import { which } from '../kernel/capabilities.js';
import { canonicalIP } from '../kernel/ip.js';
import { LABEL_KEY, LABEL_VALUE } from '../api/schema.js';
import { httpGet } from '../observe/http-get.js';
import type { PluginDefinition, PluginLabDefaults, PluginStatusReport } from '../api/plugin.js';
import { loadCatalogPlugins } from '../config/plugin-loader.js';
import { BUNDLE } from '../build-info.js';
import { fakeKubeconfig } from '../testing/fake-apiserver.js';
import { labApiControl, type LabApiStatus } from './apiserver.js';
import { cutRuleset, DEFAULT_LAB_ROOT, LAB_API, labTopology, type LabNode, type LabOptions, type LabTopology } from './topology.js';

export { DEFAULT_LAB_ROOT } from './topology.js';
/** The agent's HTTP port inside each node's namespace. */
export const LAB_HTTP_PORT = 9471;
/** The lab's defaults, short so that a lab converges and heals quickly; `weft lab status` shows them. */
export const LAB_SETTINGS = { resync: '5s', rescan: '2s' } as const;
/** The lab's address plan, declared to every agent as an operator would: pods in 198.19/16, nodes in 198.18/16 and behind NATs in 203.0.113/24. */
export const LAB_ADDRESS_PLAN = { podNetworks: ['198.19.0.0/16'], underlayNetworks: ['198.18.0.0/16', '203.0.113.0/24'] } as const;

/** @weft/core's directory: two up from dist/lab/ (src/lab/ in tests); beside the bundle's dist/weft/ in the bundle. */
const CORE_DIR = BUNDLE ? new URL('../../core/', import.meta.url) : new URL('../../', import.meta.url);
/**
 * What the lab's agents start from: the bundle's startup snapshot (`npm run build` makes both with tools/bundle.mjs),
 * as the DaemonSet's image does — start-up and memory are measured on what ships. `node --snapshot-blob` it.
 */
export const AGENT_SNAPSHOT = fileURLToPath(new URL('../dist/weft/weft.blob', CORE_DIR));
/**
 * The Node flags every lab agent runs with, as the DaemonSet runs it (docs/discovery.md, "Memory"):
 * - `--max-semi-space-size=1`: a young generation of 1 MiB semi-spaces instead of V8's 16 MiB — a lower peak for
 *   the same CPU (VmRSS 131–137 → 105–112 MiB in the first minutes of a lab agent with churn);
 *   (keepalive's GC: 26–29 µs of a ~315 µs probe with it, 19–20 µs with 2 MiB semi-spaces, 2026-11-30);
 * - `--single-threaded-gc --no-concurrent-recompilation --no-concurrent-sparkplug`: V8 collects and compiles on the
 *   main thread, without helper threads (their stacks and arenas): ~1–3 MiB.
 * None of them is in V8's flag hash, so Node's built-in modules keep the code they ship compiled for the default
 * flags. The flags that are — `--max-opt=2` (no TurboFan), `--single-threaded`, `--max-lazy`, which the agent ran
 * with before — made V8 compile every built-in module it loads from source: 0.07–0.1 s of the lab's join (509
 * against 439 ms, median of eight, alternated in one lab). TurboFan stays out all the same: `weft run` turns it off
 * once it is ready (runtime/run.ts, `settleOnceReady`). Not `--optimize-for-size`: 3.7 MiB less, but 120 µs more
 * CPU per keepalive probe and a slower planner. Not the optimising compilers' removal (`--no-opt --no-maglev`):
 * 11 MiB less, but the interpreter makes the agent's heavy loops 10–30× slower (keepalive's assignment for 5,000
 * nodes: 0.3 → 7.5 s). The environment adds {@link AGENT_ENV}.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--single-threaded-gc', '--no-concurrent-recompilation', '--no-concurrent-sparkplug'];
/**
 * The environment every lab agent gets besides its own (and the DaemonSet's container): glibc's malloc keeps at most
 * two arenas (one per thread by default, each holding freed memory of its own): 1–3 MiB less.
 */
export const AGENT_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };
/** The lab's API server process (built: from the sources too, tests run the built one). */
const API_MAIN = fileURLToPath(new URL('dist/lab/apiserver-main.js', CORE_DIR));

/** What `Lab.up` takes; every field has a default (3 nodes, 1 location, no NAT, the lab named `lab`). */
export interface LabUpOptions extends Partial<LabOptions> {
  /** A weft config whose `plugins`, `reconcile` and `log` sections replace the lab's defaults on every node. */
  readonly config?: string | undefined;
  /** Where the lab keeps its files (default /run/weft-lab). */
  readonly root?: string | undefined;
  /** How long `up` waits for the agents to converge before it reports what has not (default 60 s). */
  readonly timeoutMs?: number | undefined;
}

/** A Service the lab declares ({@link Lab.declareServices}). */
export interface LabService {
  readonly name: string;
  readonly namespace?: string;
  readonly annotations: Readonly<Record<string, string>>;
  /** Default `lab-<namespace>-<name>`. */
  readonly uid?: string;
  /** Pods (`n3:pod`, `n3:pod2`) with their conditions (default ready). */
  readonly endpoints: readonly { readonly pod: string; readonly ready?: boolean; readonly serving?: boolean; readonly terminating?: boolean }[];
}

/** One node in `weft lab status`. */
export interface LabNodeStatus {
  readonly name: string;
  readonly location: string;
  readonly underlay: string;
  /** The address the node's traffic leaves its location with, when it sits behind NAT. */
  readonly natAddress: string | null;
  readonly podCIDR: string;
  /** The pod's address (in the pod namespace, `weft lab exec NODE:pod`). */
  readonly pod: string;
  readonly agent: 'running' | 'dead';
  readonly pid: number | null;
  /** The agent's API inside the node's namespace, e.g. `weft lab exec n1 -- curl -s http://198.18.1.11:9471/readyz`. */
  readonly http: string;
  /** /readyz answered 200. */
  readonly ready: boolean;
  /** Nodes in the agent's cluster view. */
  readonly nodesSeen: number | null;
  /** Each enabled plugin's status (`/api/<plugin>/status`), where it reports one. */
  readonly plugins: Record<string, PluginStatusReport>;
}

/** The lab's API server in `weft lab status` (`discovery: kubernetes`). */
export interface LabApiServerStatus {
  readonly url: string;
  /** `down` after {@link Lab.apiDown}, `dead` when its process is gone. */
  readonly state: 'serving' | 'down' | 'dead';
  readonly pid: number | null;
  /** Node objects it holds. */
  readonly nodes: number | null;
  /** Node PATCH requests (the agents' writes) since it started. */
  readonly patches: number | null;
}

export interface LabStatus {
  readonly lab: string;
  readonly options: LabOptions;
  readonly settings: Record<string, unknown>;
  /** Every agent running, ready, and seeing every node. */
  readonly converged: boolean;
  /** What keeps the lab from converging, one line per problem. */
  readonly problems: readonly string[];
  readonly nodes: readonly LabNodeStatus[];
  /** The lab's API server; null with `discovery: directory`. */
  readonly api: LabApiServerStatus | null;
}

/** What the lab records on disk, so that `status`, `exec` and `down` work from another process. */
interface LabRecord {
  readonly version: 1;
  readonly options: LabOptions;
  readonly config: string | null;
  complete: boolean;
  agents: Record<string, { pid: number; startedAt: string }>;
  cuts: [string, string][];
  /** The API server's process (`discovery: kubernetes`). */
  api?: { pid: number; startedAt: string };
  /** The plugins every node runs. */
  plugins?: string[];
  /** Per node, the annotations the plugins asked for (their `lab.annotations`). */
  annotations?: Record<string, Record<string, string>>;
}

/**
 * A weft cluster on this machine: a network namespace per node, switches, routers and NAT routers in their own
 * namespaces, a pod namespace per node, one real agent per node in its own mount namespace, the `directory`
 * discovery source. Needs root. `Lab.up` builds (or finds) one; `down` removes everything, also after a crash.
 */
export class Lab {

  private constructor(
    readonly topology: LabTopology,
    readonly dir: string,
    private record: LabRecord,
  ) {}

  /** The lab's name. */
  get name(): string {
    return this.topology.options.name;
  }

  /**
   * Builds the lab, starts an agent per node and waits (bounded) for them to converge. On a lab that is already up
   * with the same options it changes nothing (it starts agents that have died); with other options it refuses.
   * A lab left half-built by an interrupted `up` is removed and built again.
   */
  static async up(options: LabUpOptions = {}): Promise<Lab> {
    const opts: LabOptions = {
      name: options.name ?? 'lab',
      nodes: options.nodes ?? 3,
      locations: options.locations ?? 1,
      nat: options.nat ?? false,
      discovery: options.discovery ?? 'directory',
      // Only when asked for: a lab recorded before these options existed compares equal.
      ...(options.pods !== undefined && options.pods !== 1 ? { pods: options.pods } : {}),
      ...(options.client === true ? { client: true } : {}),
    };
    const topology = labTopology(opts);
    const root = options.root ?? DEFAULT_LAB_ROOT;
    const dir = join(root, opts.name);
    const config = options.config ?? null;
    const pluginSections = await templateSections(config, topology.nodes);
    // Every node's config is checked before anything is built: bad input changes nothing.
    for (const n of topology.nodes) await loadConfigText(nodeConfigText(topology, dir, n, pluginSections), join(dir, n.name, 'weft.yaml'));

    const existing = readRecord(dir);
    if (existing?.complete) {
      if (JSON.stringify(existing.options) !== JSON.stringify(opts) || existing.config !== config) {
        throw new Error(`lab "${opts.name}" is already up with ${describeOptions(existing.options)}${existing.config ? ` and --config ${existing.config}` : ''}; run "weft lab down${opts.name === 'lab' ? '' : ` --name ${opts.name}`}" first`);
      }
      const lab = new Lab(topology, dir, existing);
      if (lab.kubernetes && !lab.apiRunning()) await lab.startApi();
      for (const n of topology.nodes) if (!lab.agentRunning(n.name)) await lab.startAgent(n.name);
      await lab.waitConverged(options.timeoutMs ?? 60_000);
      return lab;
    }
    await requireTools();
    await Lab.down(opts.name, root); // whatever an interrupted up left behind
    const record: LabRecord = { version: 1, options: opts, config, complete: false, agents: {}, cuts: [], plugins: Object.keys(pluginSections.plugins).sort(), annotations: pluginSections.annotations };
    await mkdir(join(dir, 'nodes'), { recursive: true, mode: 0o700 });
    const lab = new Lab(topology, dir, record);
    await lab.save();
    await lab.build(pluginSections);
    record.complete = true;
    await lab.save();
    await lab.waitConverged(options.timeoutMs ?? 60_000);
    return lab;
  }

  /** The lab that is up under this name; throws when there is none. */
  static attach(name = 'lab', root = DEFAULT_LAB_ROOT): Lab {
    const dir = join(root, name);
    const record = readRecord(dir);
    if (!record) throw new Error(`no lab "${name}" is up (nothing at ${dir}); start one with "weft lab up"`);
    return new Lab(labTopology(record.options), dir, record);
  }

  /**
   * Removes a lab: stops its agents and every process left in its namespaces (wireguard-go among them), deletes
   * its namespaces (and with them their links), unmounts its mount namespaces and removes its files. Works from
   * what the lab recorded and from the namespace names, so also after a crash. Idempotent.
   */
  static async down(name = 'lab', root = DEFAULT_LAB_ROOT): Promise<{ namespaces: number; processes: number }> {
    const dir = join(root, name);
    const record = readRecord(dir);
    const prefix = `wlab-${name}-`;
    let processes = 0;
    // The agents first, gracefully: they are told to stop, then killed.
    const agents = Object.entries(record?.agents ?? {}).filter(([node, a]) => isAgent(a.pid, dir, node));
    for (const [, a] of agents) processes += signal(a.pid, 'SIGTERM') ? 1 : 0;
    for (let i = 0; i < 30 && agents.some(([node, a]) => isAgent(a.pid, dir, node)); i++) await sleep(100);
    for (const [node, a] of agents) if (isAgent(a.pid, dir, node)) signal(a.pid, 'SIGKILL');
    // Then the API server (it runs in the lab's api namespace, which the sweep below would also reach).
    const api = record?.api;
    if (api && isApiServer(api.pid, dir)) {
      processes += signal(api.pid, 'SIGTERM') ? 1 : 0;
      for (let i = 0; i < 20 && isApiServer(api.pid, dir); i++) await sleep(50);
    }
    const namespaces = (await listNetns()).filter((n) => n.startsWith(prefix));
    // Whatever else runs in the lab's namespaces is the lab's: wireguard-go, commands run by `lab exec`.
    for (const ns of namespaces) {
      const pids = await execa('ip', ['netns', 'pids', ns], { reject: false });
      for (const pid of pids.stdout.split('\n').filter((p) => /^\d+$/.test(p))) processes += signal(Number(pid), 'SIGKILL') ? 1 : 0;
    }
    for (const ns of namespaces) await execa('ip', ['netns', 'del', ns], { reject: false });
    // Mount namespaces bound to files, and the private bind mount that holds them.
    const mnt = join(dir, 'mnt');
    for (const line of (await readFile('/proc/self/mountinfo', 'utf8').catch(() => '')).split('\n').reverse()) {
      const point = line.split(' ')[4];
      if (point !== undefined && (point === mnt || point.startsWith(`${mnt}/`))) await execa('umount', ['-l', point], { reject: false });
    }
    await rm(dir, { recursive: true, force: true });
    return { namespaces: namespaces.length, processes };
  }

  /**
   * Runs a command in a node's namespaces (`n1`: its network and mount namespace), one of its pods' (`n1:pod`,
   * `n1:pod2`, …), or the outside client's (`client`, with `client: true`).
   */
  async exec(target: string, cmd: readonly string[], options: { timeoutMs?: number; stdio?: 'pipe' | 'inherit' } = {}): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const argv = this.enter(target, cmd);
    const r = await execa(argv[0] as string, argv.slice(1), { reject: false, timeout: options.timeoutMs ?? 60_000, ...(options.stdio === 'inherit' ? { stdio: 'inherit' } : {}) });
    return { exitCode: r.exitCode ?? 1, stdout: typeof r.stdout === 'string' ? r.stdout : '', stderr: typeof r.stderr === 'string' ? r.stderr : '' };
  }

  /** The argv that runs `cmd` inside a node (`n1`), one of its pods (`n1:pod`, `n1:pod2`) or the client (`client`). */
  enter(target: string, cmd: readonly string[]): string[] {
    if (cmd.length === 0) throw new Error('no command given');
    if (target === 'client') {
      const ns = this.topology.clientNetns;
      if (ns === undefined) throw new Error(`lab "${this.name}" has no outside client: make it with --client`);
      return ['nsenter', `--net=/run/netns/${ns}`, '--', ...cmd];
    }
    const [nodeName, part] = target.split(':');
    const node = this.node(nodeName ?? '');
    if (part !== undefined) {
      const pod = node.pods.find((p) => p.name === part);
      if (!pod) throw new Error(`"${target}": expected NODE, ${node.pods.map((p) => `NODE:${p.name}`).join(', ')} or client`);
      return ['nsenter', `--net=/run/netns/${pod.netns}`, '--', ...cmd];
    }
    const mount = this.mountFile(node.name);
    return ['nsenter', `--net=/run/netns/${node.netns}`, ...(existsSync(mount) ? [`--mount=${mount}`] : []), '--', ...cmd];
  }

  /** Kills a node's agent (SIGKILL unless told otherwise); the lab does not restart it. */
  async killAgent(node: string, sig: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const a = this.record.agents[this.node(node).name];
    if (!a || !isAgent(a.pid, this.dir, node)) return;
    signal(a.pid, sig);
    for (let i = 0; i < 100 && isAgent(a.pid, this.dir, node); i++) await sleep(50);
  }

  /**
   * Takes a node out of the cluster, as deleting a Node object would: its agent is killed and its document removed
   * from the directory, so every other agent drops it. Its namespaces stay; `startAgent` brings it back (a join).
   */
  async leave(node: string): Promise<void> {
    const n = this.node(node);
    await this.killAgent(n.name);
    if (this.kubernetes) await this.api('DELETE', `/nodes/${n.name}`);
    else await rm(join(this.dir, 'nodes', `${n.name}.yaml`), { force: true });
  }

  /**
   * With `discovery: kubernetes`, creates the node's Node object when there is none — what a kubelet does when it
   * registers, before the DaemonSet's pod starts on the node. {@link startAgent} does it too; the join benchmark does
   * it first, so that its clock starts with the agent.
   */
  async register(node: string): Promise<void> {
    const n = this.node(node);
    if (this.kubernetes) await this.api('PUT', `/nodes/${n.name}?ifAbsent=true`, labNodeObject(n, this.record.annotations?.[n.name]));
  }

  /**
   * Starts a node's agent (when it is not running) in the node's network and mount namespace. With `discovery:
   * kubernetes` its Node object is created first when there is none (a kubelet registering), also while the API
   * server is down (it then appears to everyone when the server is back).
   */
  async startAgent(node: string): Promise<number> {
    const n = this.node(node);
    const current = this.record.agents[n.name];
    if (current && isAgent(current.pid, this.dir, n.name)) return current.pid;
    if (!existsSync(AGENT_SNAPSHOT)) throw new Error(`the lab's agents start from the snapshot ${AGENT_SNAPSHOT}, which is missing: run npm run build`);
    await this.register(n.name);
    const nodeDir = join(this.dir, n.name);
    const log = await open(join(nodeDir, 'agent.log'), 'a', 0o600);
    try {
      const child = spawn(
        'nsenter',
        [`--net=/run/netns/${n.netns}`, `--mount=${this.mountFile(n.name)}`, '--', process.execPath, ...AGENT_NODE_FLAGS, '--snapshot-blob', AGENT_SNAPSHOT, 'run', '--config', join(nodeDir, 'weft.yaml')],
        {
          detached: true,
          stdio: ['ignore', log.fd, log.fd],
          // No compile cache: the snapshot's code is not compiled through Node's module loader, so it would hold nothing.
          env: { ...process.env, ...AGENT_ENV, NODE_NAME: n.name, NO_COLOR: '1' },
        },
      );
      const pid = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid as number));
        child.once('error', reject);
      });
      child.unref();
      this.record.agents[n.name] = { pid, startedAt: new Date().toISOString() };
      await this.save();
      return pid;
    } finally {
      await log.close();
    }
  }

  /**
   * Breaks the underlay between two nodes: each drops every packet to or from the other's addresses (for a peer
   * behind NAT in another location, its NAT router's address — which cuts that whole location off the node).
   */
  async cut(a: string, b: string): Promise<void> {
    const [x, y] = [this.node(a).name, this.node(b).name].sort() as [string, string];
    if (x === y) throw new Error(`cannot cut ${x} from itself`);
    if (!this.record.cuts.some(([p, q]) => p === x && q === y)) this.record.cuts.push([x, y]);
    await this.save();
    await this.applyCuts([x, y]);
  }

  /** Undoes {@link cut}. */
  async heal(a: string, b: string): Promise<void> {
    const [x, y] = [this.node(a).name, this.node(b).name].sort() as [string, string];
    this.record.cuts = this.record.cuts.filter(([p, q]) => !(p === x && q === y));
    await this.save();
    await this.applyCuts([x, y]);
  }

  /** The path of a node's agent log. */
  logFile(node: string): string {
    return join(this.dir, this.node(node).name, 'agent.log');
  }

  /** Removes this lab. */
  async down(): Promise<void> {
    await Lab.down(this.name, join(this.dir, '..'));
  }

  /**
   * Sets (a string) or removes (`null`) labels of a node, as `kubectl label node` would: with `discovery:
   * kubernetes` on its Node object; with `directory`, in the node's own config (`discovery.directory.self.labels`),
   * which its agent reloads and publishes in its document. The location's region label cannot be changed here.
   */
  async label(node: string, labels: Readonly<Record<string, string | null>>): Promise<void> {
    const n = this.node(node);
    for (const [k, v] of Object.entries(labels)) {
      if (!LABEL_KEY.test(k) || k === 'topology.kubernetes.io/region') throw new Error(`label ${JSON.stringify(k)}: not a label key the lab can set`);
      if (v !== null && !LABEL_VALUE.test(v)) throw new Error(`label ${k}: ${JSON.stringify(v)} is not a label value`);
    }
    const apply = (current: Record<string, string>) => {
      const next = { ...current };
      for (const [k, v] of Object.entries(labels)) {
        if (v === null) delete next[k];
        else next[k] = v;
      }
      return next;
    };
    if (this.kubernetes) {
      const objects = await this.apiNodes();
      const object = objects.find((o) => o.metadata.name === n.name);
      if (!object) throw new Error(`node ${n.name} is not registered with the lab's API server`);
      const metadata = object.metadata as { labels?: Record<string, string> };
      await this.api('PUT', `/nodes/${n.name}`, { ...object, metadata: { ...object.metadata, labels: apply(metadata.labels ?? {}) } });
      return;
    }
    const file = join(this.dir, n.name, 'weft.yaml');
    const doc = parseDocument(await readFile(file, 'utf8'));
    const path = ['discovery', 'directory', 'self', 'labels'];
    const current = (doc.getIn(path) as { toJSON(): Record<string, string> } | undefined)?.toJSON() ?? {};
    doc.setIn(path, apply(current));
    // Written whole and renamed into place: the agent's watch never reads half a file.
    await writeFile(`${file}.new`, doc.toString(), { mode: 0o600 });
    await rename(`${file}.new`, file);
  }

  /**
   * Routes a VIP from the lab's router to these nodes (their underlay addresses), by ECMP over the flow's addresses
   * and ports when there are several — a data centre's router that learnt the VIP by BGP from each ingress node. A
   * node left out is one whose "BGP session" went down; no nodes withdraws the route. Needs `client: true`.
   */
  async routeVip(vip: string, nodes: readonly string[]): Promise<void> {
    const router = this.topology.routerNetns;
    if (router === undefined || this.topology.clientNetns === undefined) throw new Error(`lab "${this.name}" has no outside client and router for VIPs: make it with --client`);
    const ip = canonicalIP(vip);
    if (ip === undefined || vip.includes('/')) throw new Error(`${JSON.stringify(vip)}: expected a VIP address`);
    const six = ip.includes(':');
    if (six) throw new Error(`${ip}: the lab's underlay is IPv4; route an IPv4 VIP`);
    const hops = [...new Set(nodes)].map((n) => this.node(n).underlay);
    const args =
      hops.length === 0
        ? ['route', 'del', `${ip}/32`]
        : hops.length === 1
          ? ['route', 'replace', `${ip}/32`, 'via', hops[0] as string]
          : ['route', 'replace', `${ip}/32`, ...hops.flatMap((h) => ['nexthop', 'via', h])];
    const r = await execa('ip', ['-n', router, ...args], { reject: false });
    if (r.exitCode !== 0 && !(hops.length === 0 && /No such process/.test(r.stderr))) throw new Error(`ip ${args.join(' ')} (router): ${r.stderr.trim()}`);
  }

  /**
   * Declares Services and their endpoints, as the API server would hold them: in the first node's document (the
   * `directory` source merges every document's), which its agent publishes to the others. An endpoint names a pod
   * (`n3:pod2`); its address and node come from the lab. Replaces what was declared before. `directory` discovery only.
   */
  async declareServices(services: readonly LabService[]): Promise<void> {
    if (this.kubernetes) throw new Error('declareServices: the lab declares Services in node documents (discovery: directory)');
    const docs = services.map((svc) => {
      const namespace = svc.namespace ?? 'default';
      const endpoints = svc.endpoints.map((e) => {
        const [nodeName, podName] = e.pod.split(':');
        const node = this.node(nodeName ?? '');
        const pod = node.pods.find((p) => p.name === (podName ?? 'pod'));
        if (!pod) throw new Error(`service ${svc.name}: endpoint ${JSON.stringify(e.pod)}: no such pod (${node.pods.map((p) => `${node.name}:${p.name}`).join(', ')})`);
        return {
          addresses: [pod.address],
          ready: e.ready ?? true,
          ...(e.serving !== undefined ? { serving: e.serving } : {}),
          ...(e.terminating !== undefined ? { terminating: e.terminating } : {}),
          nodeName: node.name,
          targetPod: { namespace, name: `${svc.name}-${node.name}-${pod.name}` },
        };
      });
      return {
        service: { namespace, name: svc.name, annotations: { ...svc.annotations }, uid: svc.uid ?? `lab-${namespace}-${svc.name}` },
        slice: { namespace, name: `${svc.name}-lab`, serviceName: svc.name, addressType: 'IPv4', endpoints },
      };
    });
    const first = this.topology.nodes[0] as LabNode;
    const file = join(this.dir, first.name, 'weft.yaml');
    const doc = parseDocument(await readFile(file, 'utf8'));
    doc.setIn(['discovery', 'directory', 'self', 'services'], docs.map((d) => d.service));
    doc.setIn(['discovery', 'directory', 'self', 'endpointSlices'], docs.map((d) => d.slice));
    await writeFile(`${file}.new`, doc.toString(), { mode: 0o600 });
    await rename(`${file}.new`, file);
  }

  /** Per node: addresses, agent, readiness, what it sees, its plugins' status. */
  async status(): Promise<LabStatus> {
    const plugins = this.pluginNames();
    const nodes = await Promise.all(
      this.topology.nodes.map(async (n): Promise<LabNodeStatus> => {
        const a = this.record.agents[n.name];
        const running = a !== undefined && isAgent(a.pid, this.dir, n.name);
        const socket = join(this.dir, n.name, 'http.sock');
        const ready = running ? (await get(socket, '/readyz')).status === 200 : false;
        const metrics = running ? await get(socket, '/metrics') : undefined;
        const seen = metrics ? /^weft_discovery_nodes (\d+)$/m.exec(metrics.body)?.[1] : undefined;
        const pluginStatus: Record<string, PluginStatusReport> = {};
        if (running) {
          for (const p of plugins) {
            const r = await get(socket, `/api/${p}/status`);
            if (r.status === 200) pluginStatus[p] = statusReport(r.body);
          }
        }
        return {
          name: n.name,
          location: n.location,
          underlay: n.underlay,
          natAddress: n.natAddress ?? null,
          podCIDR: n.podCIDR,
          pod: n.pod,
          agent: running ? 'running' : 'dead',
          pid: running ? a.pid : null,
          http: `${n.underlay}:${String(LAB_HTTP_PORT)}`,
          ready,
          nodesSeen: seen === undefined ? null : Number(seen),
          plugins: pluginStatus,
        };
      }),
    );
    const total = this.topology.nodes.length;
    const problems = nodes.flatMap((n) => {
      if (n.agent === 'dead') return [`${n.name}: agent is not running (weft lab logs ${n.name})${lastWords(join(this.dir, n.name, 'agent.log'))}`];
      const p: string[] = [];
      if (!n.ready) p.push(`${n.name}: agent not ready (/readyz)`);
      if (n.nodesSeen !== total) p.push(`${n.name}: sees ${String(n.nodesSeen ?? 0)} of ${String(total)} nodes`);
      for (const [plugin, st] of Object.entries(n.plugins)) {
        if (!st.converged) p.push(`${n.name}: ${plugin} has not converged (${st.summary})`);
      }
      return p;
    });
    const api = this.kubernetes ? await this.apiStatus() : null;
    if (api && api.state !== 'serving') problems.push(`API server ${api.url} is ${api.state}${api.state === 'down' ? ' (weft lab api up)' : ''}`);
    return { lab: this.name, options: this.topology.options, settings: this.settings(), converged: problems.length === 0, problems, nodes, api };
  }

  /** Waits until {@link status} says converged, or the time is up; returns the last status either way. */
  async waitConverged(timeoutMs: number): Promise<LabStatus> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const s = await this.status();
      if (s.converged || performance.now() >= deadline) return s;
      await sleep(250);
    }
  }

  /** The lab's settings as status shows them. */
  settings(): Record<string, unknown> {
    return {
      discovery: this.kubernetes ? 'kubernetes' : 'directory',
      // The --config file's, when it sets one.
      resync: (this.record.config ? templateSectionsSync(this.record.config).reconcile?.resync : undefined) ?? LAB_SETTINGS.resync,
      ...(this.kubernetes ? {} : { directoryRescan: LAB_SETTINGS.rescan }),
      plugins: this.pluginNames(),
      config: this.record.config,
    };
  }

  /** Whether the agents discover through the lab's API server. */
  get kubernetes(): boolean {
    return this.topology.options.discovery === 'kubernetes';
  }

  /**
   * Takes the lab's API server down (`discovery: kubernetes`): every connection is dropped and new ones are refused,
   * as during an API server restart or a control-plane outage. Objects and their history stay.
   */
  async apiDown(): Promise<void> {
    await this.api('POST', '/down');
  }

  /** Brings the API server back after {@link apiDown}: watches resume from their last version. */
  async apiUp(): Promise<void> {
    await this.api('POST', '/up');
  }

  /** The API server: serving or not, its objects, the Node patches it has served. */
  async apiStatus(): Promise<LabApiServerStatus> {
    const url = `http://${LAB_API.address}:${String(LAB_API.port)}`;
    const pid = this.record.api?.pid;
    if (pid === undefined || !isApiServer(pid, this.dir)) return { url, state: 'dead', pid: null, nodes: null, patches: null };
    const s = await this.api<LabApiStatus>('GET', '/status').catch(() => undefined);
    if (!s) return { url, state: 'dead', pid, nodes: null, patches: null };
    return { url, state: s.serving ? 'serving' : 'down', pid, nodes: s.nodes, patches: s.patches };
  }

  /** The Node objects the API server holds (with what the agents published on them). */
  async apiNodes(): Promise<{ metadata: { name: string; annotations?: Record<string, string>; [k: string]: unknown }; [k: string]: unknown }[]> {
    return this.api('GET', '/nodes');
  }

  private api<T = unknown>(method: string, path: string, payload?: unknown): Promise<T> {
    if (!this.kubernetes) return Promise.reject(new Error(`lab "${this.name}" has no API server (it was made with --discovery directory)`));
    return labApiControl<T>(join(this.dir, 'api.sock'), method, path, payload);
  }

  private apiRunning(): boolean {
    const a = this.record.api;
    return a !== undefined && isApiServer(a.pid, this.dir);
  }

  /** Starts the API server in the lab's api namespace, waits until it answers, and registers every node. */
  private async startApi(): Promise<void> {
    const netns = this.topology.apiNetns as string;
    const log = await open(join(this.dir, 'api.log'), 'a', 0o600);
    let exited: string | undefined;
    try {
      const child = spawn('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath, API_MAIN, this.dir], { detached: true, stdio: ['ignore', log.fd, log.fd] });
      child.once('exit', (code, sig) => (exited = sig ? `killed by ${sig}` : `exit ${String(code)}`));
      const pid = await new Promise<number>((resolve, reject) => {
        child.once('spawn', () => resolve(child.pid as number));
        child.once('error', reject);
      });
      child.unref();
      this.record.api = { pid, startedAt: new Date().toISOString() };
      await this.save();
    } finally {
      await log.close();
    }
    const deadline = performance.now() + 15_000;
    for (;;) {
      const ok = await this.api('GET', '/status').then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (exited !== undefined) throw new Error(`the lab's API server ended (${exited}): ${lastLine(join(this.dir, 'api.log'))}`);
      if (performance.now() > deadline) throw new Error(`the lab's API server did not answer in 15 s (${join(this.dir, 'api.log')})`);
      await sleep(50);
    }
    for (const n of this.topology.nodes) await this.api('PUT', `/nodes/${n.name}?ifAbsent=true`, labNodeObject(n, this.record.annotations?.[n.name]));
  }

  /** The plugins every node runs: the `--config` file's, else the lab's defaults (recorded at `up`). */
  private pluginNames(): string[] {
    return this.record.plugins ?? [];
  }

  private node(name: string): LabNode {
    const n = this.topology.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node "${name}" in lab "${this.name}" (nodes: ${this.topology.nodes.map((x) => x.name).join(', ')})`);
    return n;
  }

  private mountFile(node: string): string {
    return join(this.dir, 'mnt', node);
  }

  private agentRunning(node: string): boolean {
    const a = this.record.agents[node];
    return a !== undefined && isAgent(a.pid, this.dir, node);
  }

  private async save(): Promise<void> {
    const file = join(this.dir, 'lab.json');
    await writeFile(`${file}.tmp`, `${JSON.stringify(this.record, null, 2)}\n`, { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  }

  private async build(sections: LabSections): Promise<void> {
    const t = this.topology;
    for (const ns of t.namespaces) await run('ip', ['netns', 'add', ns]);
    for (const step of t.steps) {
      if (step.kind === 'ip') await run('ip', ['-n', step.netns, '-batch', '-'], `${step.lines.join('\n')}\n`);
      else if (step.kind === 'sysctl') for (const [k, v] of Object.entries(step.settings)) await run('ip', ['netns', 'exec', step.netns, 'sysctl', '-qw', `${k}=${v}`]);
      else await this.nft(step.netns, step.ruleset);
    }
    // A mount namespace per node, bound to a file so that a restarted agent (and `lab exec`) joins the same one:
    // its own /run/wireguard, so that every node's wireguard-go socket can have the same interface name.
    const mnt = join(this.dir, 'mnt');
    await mkdir(mnt, { recursive: true });
    await run('mount', ['--bind', mnt, mnt]);
    await run('mount', ['--make-private', mnt]);
    await mkdir('/run/wireguard', { recursive: true, mode: 0o755 });
    for (const n of t.nodes) {
      const file = this.mountFile(n.name);
      await writeFile(file, '');
      await bindMountNamespace(file);
      await run('nsenter', [`--mount=${file}`, 'mount', '-t', 'tmpfs', '-o', 'mode=0755,size=1m', `wlab-${this.name}-${n.name}`, '/run/wireguard']);
      const nodeDir = join(this.dir, n.name);
      await mkdir(join(nodeDir, 'state'), { recursive: true, mode: 0o700 });
      await writeFile(join(nodeDir, 'weft.yaml'), nodeConfigText(t, this.dir, n, sections), { mode: 0o600 });
    }
    if (this.kubernetes) {
      const token = randomBytes(24).toString('base64url');
      await writeFile(join(this.dir, 'api-token'), `${token}\n`, { mode: 0o600 });
      await writeFile(join(this.dir, 'kubeconfig'), fakeKubeconfig(`http://${LAB_API.address}:${String(LAB_API.port)}`, token), { mode: 0o600 });
      await this.startApi();
    }
    for (const n of t.nodes) await this.startAgent(n.name);
  }

  private async applyCuts(nodes: readonly string[]): Promise<void> {
    for (const name of nodes) {
      const self = this.node(name);
      const addresses = this.record.cuts
        .filter(([p, q]) => p === name || q === name)
        .flatMap(([p, q]) => {
          const peer = this.node(p === name ? q : p);
          return [peer.underlay, ...(peer.natAddress && peer.locationIndex !== self.locationIndex ? [peer.natAddress] : [])];
        });
      await this.nft(self.netns, cutRuleset(addresses));
    }
  }

  private async nft(netns: string, ruleset: string): Promise<void> {
    // nft reads a file: with a socket for stdin, /dev/stdin cannot be opened.
    const file = join(this.dir, `nft-${netns}.conf`);
    await writeFile(file, ruleset, { mode: 0o600 });
    try {
      await run('ip', ['netns', 'exec', netns, 'nft', '-f', file]);
    } finally {
      await rm(file, { force: true });
    }
  }
}

/** The sections of a `--config` template the lab takes: `plugins`, `reconcile`, `log`. */
interface TemplateSections {
  readonly plugins?: Record<string, unknown>;
  readonly reconcile?: Record<string, unknown>;
  readonly log?: Record<string, unknown>;
}

/** What every node's config takes from the template and the plugins: the sections, and each node's annotations. */
export interface LabSections extends TemplateSections {
  readonly plugins: Record<string, unknown>;
  /** Per node name, the annotations its plugins asked for (`lab.annotations`). */
  readonly annotations: Record<string, Record<string, string>>;
}

const TEMPLATE_KEYS = new Set(['plugins', 'reconcile', 'log']);

/**
 * The lab's sections: a `--config` template's (a weft config of which the lab takes plugins, reconcile and log),
 * and where it names no plugins, every plugin of the distribution's catalog with its `lab.config`. Then the
 * annotations each enabled plugin asks for on each node.
 */
async function templateSections(file: string | null, nodes: readonly LabNode[] = []): Promise<LabSections> {
  let template: TemplateSections = {};
  let definitions: PluginDefinition[];
  if (file !== null) {
    // Valid as a weft config in its own right (errors point at its lines), and nothing the lab sets itself.
    const loaded = await loadConfigText(await readConfigFile(file), file);
    template = templateSectionsSync(file);
    definitions = loaded.plugins.map((p) => p.definition);
  } else definitions = [];
  let plugins = template.plugins;
  if (plugins === undefined) {
    definitions = (await loadCatalogPlugins()).filter(inDefaultLab);
    plugins = labPluginDefaults(definitions);
  }
  return { ...template, plugins, annotations: labAnnotations(definitions, nodes) };
}

function templateSectionsSync(file: string): TemplateSections {
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const value: TemplateSections & Record<string, unknown> = (doc.toJS() ?? {}) as TemplateSections & Record<string, unknown>;
  const extra = Object.keys(value).filter((k) => !TEMPLATE_KEYS.has(k));
  if (extra.length > 0) throw new Error(`${file}: the lab sets ${extra.join(', ')} itself; a lab config holds only plugins, reconcile and log`);
  return value;
}

/** Whether a lab made without a config enables the plugin: all but those whose `lab.enabled` is false. */
export function inDefaultLab(definition: PluginDefinition): boolean {
  return (definition.lab as PluginLabDefaults | undefined)?.enabled !== false;
}

/** The plugins' config sections in a lab made without a config: each plugin's `lab.config`, or its defaults (the caller leaves out those with `lab.enabled: false`). */
export function labPluginDefaults(definitions: readonly PluginDefinition[]): Record<string, unknown> {
  return Object.fromEntries(definitions.map((d) => [d.name, (d.lab as PluginLabDefaults | undefined)?.config ?? {}]));
}

const LAB_ANNOTATION = /^weft\.io\/[a-z0-9]([a-z0-9.-]{0,50}[a-z0-9])?$/;

/** What each plugin's `lab.annotations` asks for on each node; a key outside `weft.io/` or a long value is refused. */
export function labAnnotations(definitions: readonly PluginDefinition[], nodes: readonly LabNode[]): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const n of nodes) {
    const mine: Record<string, string> = {};
    for (const d of definitions) {
      const asked = (d.lab as PluginLabDefaults | undefined)?.annotations?.({ name: n.name, location: n.location, nat: n.natAddress !== undefined }) ?? {};
      for (const [key, value] of Object.entries(asked)) {
        if (!LAB_ANNOTATION.test(key) || typeof value !== 'string' || value.length > 256) {
          throw new Error(`plugin "${d.name}": lab.annotations for ${n.name}: ${JSON.stringify(key)} is not a weft.io/ annotation with a value of at most 256 characters`);
        }
        mine[key] = value;
      }
    }
    if (Object.keys(mine).length > 0) out[n.name] = mine;
  }
  return out;
}

/** One node's weft.yaml in the lab. */
export function nodeConfigText(t: LabTopology, dir: string, n: LabNode, sections: LabSections): string {
  const annotations = sections.annotations[n.name];
  const config = {
    node: { name: n.name, stateDir: join(dir, n.name, 'state') },
    cluster: LAB_ADDRESS_PLAN,
    discovery: t.options.discovery === 'kubernetes' ? { source: 'kubernetes', kubernetes: { kubeconfig: join(dir, 'kubeconfig') } } : {
      source: 'directory',
      directory: {
        path: join(dir, 'nodes'),
        rescan: LAB_SETTINGS.rescan,
        self: {
          internalAddresses: [n.underlay],
          podCIDRs: [n.podCIDR],
          labels: { 'topology.kubernetes.io/region': n.location },
          // What an operator would annotate (the plugins' `lab.annotations`: behind NAT, a keepalive).
          ...(annotations ? { annotations } : {}),
        },
      },
    },
    reconcile: { resync: LAB_SETTINGS.resync, ...(sections.reconcile ?? {}) },
    http: { listen: `0.0.0.0:${String(LAB_HTTP_PORT)}`, socket: join(dir, n.name, 'http.sock') },
    log: { level: 'info', format: 'json', ...(sections.log ?? {}) },
    plugins: sections.plugins,
  };
  return `# weft lab "${t.options.name}", node ${n.name}: written by weft lab up\n${stringify(config)}`;
}

function describeOptions(o: LabOptions): string {
  return `--nodes ${String(o.nodes)} --locations ${String(o.locations)}${o.nat ? ' --nat' : ''}${o.discovery === 'kubernetes' ? ' --discovery kubernetes' : ''}${o.pods !== undefined ? ` --pods ${String(o.pods)}` : ''}${o.client ? ' --client' : ''}`;
}

/**
 * A lab node's Node object, as its kubelet would register it (and an operator annotate it): its underlay address,
 * its pod CIDR, its location's region label, Ready, and the annotations its plugins ask for (`lab.annotations`).
 */
export function labNodeObject(n: LabNode, annotations: Readonly<Record<string, string>> = {}): { metadata: { name: string; [k: string]: unknown }; [k: string]: unknown } {
  return {
    metadata: {
      name: n.name,
      labels: { 'kubernetes.io/hostname': n.name, 'topology.kubernetes.io/region': n.location },
      annotations: { ...annotations },
    },
    spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
    status: {
      addresses: [
        { type: 'InternalIP', address: n.underlay },
        { type: 'Hostname', address: n.name },
      ],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}


function readRecord(dir: string): LabRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as LabRecord;
  } catch {
    return undefined;
  }
}

/** Whether `pid` is this lab's API server (and not a process that reused the number). */
function isApiServer(pid: number, dir: string): boolean {
  try {
    const argv = readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8').split('\0');
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    return argv.includes(API_MAIN) && argv.includes(dir) && !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** Whether `pid` is this lab's agent for `node` (and not a process that reused the number). */
function isAgent(pid: number, dir: string, node: string): boolean {
  try {
    const argv = readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8').split('\0');
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    return argv.includes(join(dir, node, 'weft.yaml')) && !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

async function listNetns(): Promise<string[]> {
  const r = await execa('ip', ['-j', 'netns', 'list'], { reject: false });
  if (r.exitCode !== 0 || r.stdout.trim() === '') return [];
  return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name);
}

async function run(cmd: string, args: string[], input?: string): Promise<void> {
  const r = await execa(cmd, args, { reject: false, timeout: 30_000, ...(input !== undefined ? { input } : {}) });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${String(r.exitCode)}): ${r.stderr.trim() || r.shortMessage}`);
}

/**
 * A new mount namespace, bound to `file` (`unshare --mount=FILE`). The kernel refuses (EINVAL) to bind a mount
 * namespace whose id is not above the caller's, against loops; Linux 6.18 hands ids out in per-CPU batches, so inside
 * a mount namespace other than the host's (a container, tools/fresh-machine.sh) one made on another CPU can get a
 * smaller id — seen here: every bind from CPU 0 refused, every one from CPU 1 accepted, and under load 20 unpinned
 * tries in a row all refused. So each try runs on the next CPU (`taskset`), a new namespace with a new id each time.
 */
const cpuCount = () => cpuList().length;

async function bindMountNamespace(file: string): Promise<void> {
  const cpus = Math.max(1, cpuCount());
  let last = '';
  for (let attempt = 0; attempt < 3 * cpus; attempt++) {
    // slave: what the host mounts later reaches the node — a pod's namespace made after the agent started
    // (/run/netns), as a DaemonSet's HostToContainer mount sees it — and nothing the node mounts reaches the host.
    const r = await execa('taskset', ['--cpu-list', String(attempt % cpus), 'unshare', `--mount=${file}`, '--propagation', 'slave', 'true'], { reject: false, timeout: 30_000 });
    if (r.exitCode === 0) return;
    last = r.stderr.trim() || (r.shortMessage ?? 'failed');
    // Invalid argument: the loop check above, or a CPU this process may not use; either way the next CPU may do.
    if (!last.includes('Invalid argument')) break;
  }
  throw new Error(`unshare --mount=${file} failed on every CPU: ${last}`);
}

/** The programs the lab runs itself, with the Debian package of each (the agents need theirs: `weft doctor`). */
export const LAB_TOOLS: readonly (readonly [string, string])[] = [
  ['ip', 'iproute2'],
  ['nft', 'nftables'],
  ['nsenter', 'util-linux'],
  ['unshare', 'util-linux'],
  ['taskset', 'util-linux'],
  ['mount', 'mount'],
  ['umount', 'mount'],
  ['sysctl', 'procps'],
];

/** Root and the lab's tools, or an error that names each missing tool and its package. */
async function requireTools(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('weft lab needs root (network and mount namespaces)');
  const missing: string[] = [];
  for (const [tool, pkg] of LAB_TOOLS) {
    if ((await which(tool)) === undefined) missing.push(`${tool} (apt-get install ${pkg})`);
  }
  if (missing.length > 0) throw new Error(`weft lab needs ${missing.join(', ')}`);
}

/**
 * Why an agent died, as `: …`, when its log says: the last line of its last run that is not an ordinary log line
 * (what the command printed on its way out, a crash) or a fatal one. '' when there is none (it was killed).
 */
function lastWords(log: string): string {
  let text: string;
  try {
    text = readFileSync(log, 'utf8').slice(-16_384);
  } catch {
    return '';
  }
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const run = lines.slice(lines.findLastIndex((l) => l.includes('"msg":"weft starting"')) + 1);
  const words = run.findLast((l) => {
    try {
      return ((JSON.parse(l) as { level?: unknown }).level as number) >= 60;
    } catch {
      return true;
    }
  });
  return words === undefined ? '' : `: ${words.slice(0, 400)}`;
}

/** A log's last line that is not empty ('(empty log)' when there is none). */
function lastLine(log: string): string {
  const lines = (existsSync(log) ? readFileSync(log, 'utf8').slice(-4096) : '').split('\n').filter((l) => l.trim() !== '');
  return lines.at(-1)?.slice(0, 400) ?? '(empty log)';
}

/** GET over the agent's Unix socket: status 0 when it does not answer. */
function get(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return httpGet({ socket: socketPath }, path, 2_000).catch(() => ({ status: 0, body: '' }));
}

/** A plugin's `/status` answer as a report; one that is not a report says so in its summary. */
function statusReport(text: string): PluginStatusReport {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return { converged: false, summary: 'status is not JSON' };
  }
  const v = value as Partial<PluginStatusReport> | null;
  if (v === null || typeof v !== 'object' || typeof v.converged !== 'boolean' || typeof v.summary !== 'string') return { converged: false, summary: 'status is not a status report' };
  return v as PluginStatusReport;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
