import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { constants as osConstants, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describeError } from '../errors.js';
import { type Capability, type Check, type DoctorReport, probeMachine, WIREGUARD_FIX, which } from './capabilities.js';
import { type ApplyResult, applyDesired, KernelApplyError, type KernelBackend, type ObserveHints } from './driver.js';
import { canonicalIP, type Family } from './ip.js';
import { batches, ipLines, NETNS_MARK, type Tool } from './iproute2-render.js';
import { type Json, parseLink, parseMpls, parseRoute, parseRule, sysctlPath } from './iproute2-parse.js';
import type { Address, Change, DesiredState, FdbEntry, InterfaceInfo, KernelOwner, Neighbour, NftCounter, NftElementChange, NftTable, Sysctl, WireGuardDevice, WireGuardDeviceStatus, WireGuardPeer } from './model.js';
import { KernelMonitor } from './monitor.js';
import { ProcFiles } from './procfiles.js';
import { splitRuleset } from './nftables.js';
import { type NLink, type NMplsRoute, nftPrefix, type NormalState, ownsLink, type NRoute, type NWireGuard } from './normalize.js';
import { wireGuardPublicKey } from './wgkeys.js';
import { parseWgDump, parseWgStatus, socketAnswers, UapiConnection, uapiDump, uapiRequest, uapiSetRequest, WIREGUARD_SOCKET_DIR, wgWritePlan } from './wireguard.js';

/** Which network namespace a driver acts in. */
export type NetnsRef = { readonly kind: 'own' } | { readonly kind: 'named'; readonly name: string } | { readonly kind: 'path'; readonly path: string };

/** The programs the driver runs. */
type ExecTool = 'ip' | 'bridge' | 'sysctl' | 'wg' | 'wireguard-go' | 'nft';

/** How WireGuard links are made: the kernel module, `wireguard-go`, or whichever this kernel supports. */
export type WireGuardImplementation = 'auto' | 'kernel' | 'userspace';

/** Runs a program with arguments (never a shell); stdin optional. Swappable for tests. */
export type Runner = (file: string, args: readonly string[], input?: string) => Promise<{ stdout: string; stderr: string; exitCode: number }>;

/** How long a read of WireGuard stands for the device, when nothing was written since (ms). */
const WG_DUMP_REUSE_MS = 250;
/**
 * How long an owner's read made by {@link Iproute2Kernel.interfaces} stands for the owner's next apply, when nothing
 * was written since (ms): the gap between a plugin reading the underlay and applying what it planned from it.
 */
const FRESH_READ_MS = 250;

/** `ip -json` answers of an owner's read: per family, links, addresses, routes, rules and permanent neighbours. */
type IpRead = [Json[][], Json[][]];

/** Interfaces as `ip -json address show` prints them, with MTU and addresses (IPv6 link-local ones left out). */
function interfaceInfos(list: readonly Json[]): InterfaceInfo[] {
  return list.map((j) => ({
    name: j.ifname as string,
    mtu: Number(j.mtu) || 0,
    up: Array.isArray(j.flags) && (j.flags as string[]).includes('UP'),
    addresses: ((j.addr_info ?? []) as Json[])
      .filter((a) => !(a.scope === 'link' && a.family === 'inet6'))
      .map((a) => `${canonicalIP(a.local as string) ?? String(a.local)}/${String(a.prefixlen)}`),
  }));
}

/** Elements per `add element` line: nft reads any length, but an error then names a shorter line. */
const NFT_CHUNK = 2048;
const chunks = <T>(list: readonly T[]): T[][] => Array.from({ length: Math.ceil(list.length / NFT_CHUNK) }, (_, i) => list.slice(i * NFT_CHUNK, (i + 1) * NFT_CHUNK));

/** A table as it is after an element change. */
function withElementChange(t: NftTable, d: NftElementChange): NftTable {
  const elements: Record<string, string[]> = {};
  for (const set of new Set([...Object.keys(t.elements ?? {}), ...Object.keys(d.add)])) {
    const removed = new Set(d.remove[set] ?? []);
    const list = [...(t.elements?.[set] ?? []).filter((e) => !removed.has(e.split(' : ')[0] as string)), ...(d.add[set] ?? [])].sort();
    if (list.length > 0) elements[set] = list;
  }
  const counters = [...(t.counters ?? []).filter((c) => !d.removeCounters.includes(c)), ...d.addCounters].sort();
  return { family: t.family, name: t.name, body: t.body, ...(Object.keys(elements).length > 0 ? { elements } : {}), ...(counters.length > 0 ? { counters } : {}) };
}

/**
 * `ip -json route` prints a route's encapsulation at the route's level, so that its `dst` (the MPLS labels, the
 * tunnel's destination) repeats the route's own key and JSON.parse would keep the last: renamed before parsing.
 */
export function renameEncapKeys(line: string): string {
  return line
    .replaceAll('"encap":"mpls","dst":', '"encap":"mpls","labels":')
    .replace(/"encap":"(ip6?)",((?:"(?:id|src)":(?:\d+|"[^"]*"),)*)"dst":/g, '"encap":"$1",$2"encap_dst":');
}

const defaultRunner: Runner = async (file, args, input) => {
  const r = await execa(file, args, { input, reject: false, timeout: 60_000, stripFinalNewline: true });
  if (r.failed && r.exitCode === undefined) throw new Error(`${file}: ${r.shortMessage}`);
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? 1 };
};


/**
 * The real kernel, through iproute2 (`ip`, `bridge`) and `sysctl`, run with argument arrays — never a shell. A
 * read is two `ip -json -batch -` processes (one per family); a write is one `ip -batch -` (plus `ip -6 -batch -`
 * for IPv6 rules and `bridge -batch -` for FDB entries when there are any).
 */
export class Iproute2Kernel implements KernelBackend {
  readonly where: string;
  private readonly run: Runner;
  /** Where key and config files live for the moment a `wg` command reads them (the agent's: `<stateDir>/tmp`). */
  private readonly scratchDir: string;
  private readonly procSys: string;
  private readonly wireguard: WireGuardImplementation;
  /** Owners read at least once (the first read also looks for what a past run left). */
  private readonly seen = new Set<string>();
  /** Owners known to have nftables tables, or MPLS routes: only those are read when the desired state has none. */
  private readonly nftOwners = new Set<string>();
  private readonly mplsOwners = new Set<string>();
  /** Per owner, the namespaces it moved links into. */
  private readonly movedTo = new Map<string, Set<string>>();
  /** Per table: the body last applied and the kernel's listing of it right after, to tell drift from change. */
  private readonly nftApplied = new Map<string, { table: NftTable; listing: string }>();
  private nftMissing: boolean | undefined;
  private wireguardResolved: Promise<'kernel' | 'userspace'> | undefined;
  /** Sysctls read through kept descriptors (own namespace only). */
  private readonly procFiles = new ProcFiles();
  /** A kept connection per wireguard-go control socket, for reads (see wgDump). */
  private readonly uapiReads = new Map<string, UapiConnection>();
  /** An owner's MPLS and nftables listings that interfaces() began before its first apply; any write drops them. */
  private readonly earlyReads = new Map<string, { at: number; mpls: Promise<NMplsRoute[]> | undefined; nft: Promise<{ tables: NftTable[]; processes: number }> }>();
  /** Owners' reads made by interfaces(), for their next apply (FRESH_READ_MS); any write drops them. */
  private readonly freshReads = new Map<string, { value: IpRead; at: number }>();
  /** The last `wg show all dump` and when it was read (see wgDump). */
  private lastWgDump: { key: string; text: string; at: number } | undefined;
  /** Tells when a read of the namespace still stands (the `monitor` option). */
  private readonly monitor: KernelMonitor | undefined;

  constructor(
    readonly netns: NetnsRef = { kind: 'own' },
    options: {
      runner?: Runner;
      wireguard?: WireGuardImplementation;
      scratchDir?: string;
      /**
       * Where the sysctls of the agent's own namespace are read and written (default `/proc/sys`): a container's
       * `/proc/sys` is read-only, so the DaemonSet mounts the host's `/proc/sys/net` elsewhere (`kernel.procSys`).
       */
      procSys?: string;
      /**
       * Keep one `ip monitor` running and reuse a read of links, addresses, routes, rules and neighbours while the
       * kernel reports no change to them (the agent sets it: a steady reconcile then starts no process at all).
       */
      monitor?: boolean;
    } = {},
  ) {
    this.run = options.runner ?? defaultRunner;
    if (options.monitor) {
      // setpriv: the monitor dies with the agent, however the agent ends (kill -9 included).
      const [file, argv] = this.command('ip', ['-o', 'monitor', 'link', 'address', 'route', 'rule', 'neigh']);
      this.monitor = new KernelMonitor(['setpriv', ['--pdeathsig', 'KILL', file, ...argv]]);
    }
    this.scratchDir = options.scratchDir ?? tmpdir();
    this.procSys = options.procSys ?? '/proc/sys';
    this.wireguard = options.wireguard ?? 'auto';
    this.where = netns.kind === 'own' ? 'own namespace' : netns.kind === 'named' ? `netns ${netns.name}` : `netns ${netns.path}`;
  }

  /** Backends of other namespaces, by path (see {@link inNamespace}). */
  private readonly others = new Map<string, Iproute2Kernel>();

  /** A backend for the namespace at `path` (through `nsenter --net=PATH`), kept for the next call with that path. */
  inNamespace(path: string): Iproute2Kernel {
    let k = this.others.get(path);
    if (!k) {
      if (this.others.size >= 4096) this.others.delete(this.others.keys().next().value as string);
      k = new Iproute2Kernel({ kind: 'path', path }, { runner: this.run, wireguard: this.wireguard, scratchDir: this.scratchDir });
      this.others.set(path, k);
    }
    return k;
  }

  async nftCounters(family: NftTable['family'], name: string): Promise<ReadonlyMap<string, NftCounter>> {
    this.nftMissing ??= (await which('nft')) === undefined;
    if (this.nftMissing) return new Map();
    const r = await this.exec('nft', ['-j', 'list', 'counters', 'table', family, name]);
    if (r.exitCode !== 0) {
      if (/No such file or directory/.test(r.stderr)) return new Map();
      throw new Error(`nft list counters (${this.where}): ${r.stderr.split('\n')[0] ?? ''}`);
    }
    const out = new Map<string, NftCounter>();
    for (const item of (JSON.parse(r.stdout || '{"nftables":[]}') as { nftables: { counter?: { name: string; packets: number; bytes: number } }[] }).nftables) {
      if (item.counter) out.set(item.counter.name, { packets: item.counter.packets, bytes: item.counter.bytes });
    }
    return out;
  }

  /** Diff and apply for an owner. */
  apply(owner: KernelOwner, desired: DesiredState, options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    return applyDesired(this, owner, desired, options);
  }

  /**
   * The command line of `tool` in this namespace: `ip -n NAME …` for the tools that take a namespace, `ip netns exec
   * NAME tool …` for the others, `nsenter --net=PATH tool …` for a namespace given by path.
   */
  command(tool: ExecTool, args: readonly string[]): [string, string[]] {
    const ns = this.netns;
    if (ns.kind === 'path') return ['nsenter', [`--net=${ns.path}`, tool, ...args]];
    if (ns.kind === 'own') return [tool, [...args]];
    if (tool === 'ip' || tool === 'bridge') return [tool, ['-n', ns.name, ...args]];
    return ['ip', ['netns', 'exec', ns.name, tool, ...args]];
  }

  private async exec(tool: ExecTool, args: readonly string[], input?: string) {
    const [file, argv] = this.command(tool, args);
    return this.run(file, argv, input);
  }

  /** One `ip -batch` of reads; `family` undefined: both, where the object shows both (addresses, neighbours). */
  private async readBatch(family: Family | undefined, lines: string[]): Promise<Json[][]> {
    const flag = family === undefined ? [] : [`-${family}`];
    const r = await this.exec('ip', [...flag, '-json', '-details', '-batch', '-'], `${lines.join('\n')}\n`);
    if (r.exitCode !== 0) throw new Error(`ip ${flag.join('')} -json -batch (${this.where}): ${r.stderr || `exit ${r.exitCode}`}`);
    const out = r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      // iproute2 prints an MPLS-encapsulated route's label stack as a second "dst" key; keep both apart.
      .map((l) => JSON.parse(renameEncapKeys(l)) as Json[]);
    if (out.length !== lines.length) throw new Error(`ip -${family} -json -batch (${this.where}): expected ${lines.length} answers, got ${out.length}`);
    return out;
  }

  async wireguardStatus(names: ReadonlySet<string>): Promise<WireGuardDeviceStatus[]> {
    if (names.size === 0) return [];
    return parseWgStatus((await this.wgDump(names, true)).text, names);
  }

  /** The public key of the last private key asked about (a device keeps its key: derived once). */
  private lastPublicKey: [string, string] | undefined;
  private readonly publicKeyOf = (privateKey: string): string => {
    if (this.lastPublicKey?.[0] !== privateKey) this.lastPublicKey = [privateKey, wireGuardPublicKey(privateKey)];
    return this.lastPublicKey[1];
  };

  /**
   * These devices as `wg show all dump` prints them. A wireguard-go device is asked on its control socket, in this
   * process; kernel WireGuard (or a name that is neither) costs one `wg show all dump`. A plugin reads the device to
   * plan, then applies, and the apply reads it again to diff: the second read reuses the first when it is younger
   * than {@link WG_DUMP_REUSE_MS}, covers the same devices and nothing was written since. `fresh` always reads.
   */
  private async wgDump(names: ReadonlySet<string>, fresh = false): Promise<{ text: string; processes: number }> {
    const key = [...names].sort().join(' ');
    const kept = this.lastWgDump;
    if (!fresh && kept && kept.key === key && performance.now() - kept.at < WG_DUMP_REUSE_MS) return { text: kept.text, processes: 0 };
    const parts: string[] = [];
    const viaWg = new Set<string>();
    await Promise.all(
      [...names].map(async (name) => {
        const socket = join(WIREGUARD_SOCKET_DIR, `${name}.sock`);
        let connection = this.uapiReads.get(socket);
        if (!connection?.connected && !exists(socket)) {
          this.uapiReads.delete(socket);
          viaWg.add(name);
          return;
        }
        if (!connection) this.uapiReads.set(socket, (connection = new UapiConnection(socket)));
        const answer = await connection.request('get=1\n\n');
        if (answer.errno !== 0) throw new Error(`wireguard-go ${name} (${socket}): get=1 answered errno ${String(answer.errno)}`);
        parts.push(uapiDump(name, answer.lines, this.publicKeyOf));
      }),
    );
    let processes = 0;
    if (viaWg.size > 0) {
      const r = await this.exec('wg', ['show', 'all', 'dump']);
      processes = 1;
      if (r.exitCode !== 0) throw new Error(`wg show all dump (${this.where}): ${r.stderr || `exit ${r.exitCode}`}`);
      parts.push(...r.stdout.split('\n').filter((line) => viaWg.has(line.slice(0, line.indexOf('\t')))));
    }
    const text = parts.join('\n');
    this.lastWgDump = { key, text, at: performance.now() };
    return { text, processes };
  }

  /** Whether a TUN device is wireguard-go's: it has a control socket (a kept connection to it proves that). */
  private isWireGuardGo(name: string): boolean {
    const socket = join(WIREGUARD_SOCKET_DIR, `${name}.sock`);
    return this.uapiReads.get(socket)?.connected === true || exists(socket);
  }

  /** Stops the `ip monitor` (the `monitor` option), closes the kept control-socket connections and /proc files. */
  close(): void {
    this.monitor?.close();
    for (const c of this.uapiReads.values()) c.close();
    this.uapiReads.clear();
    this.procFiles.close();
  }

  async interfaces(owner?: KernelOwner): Promise<InterfaceInfo[]> {
    if (owner !== undefined && owner.rulePriorities === undefined) {
      // The owner's whole read (one `ip`, the same as `ip address show`), kept for its apply right after.
      const begun = this.earlyReads.get(owner.name);
      if (!this.seen.has(owner.name) && (begun === undefined || performance.now() - begun.at > FRESH_READ_MS)) {
        // The owner's first apply also lists its MPLS routes and nftables tables (what a past run left): begun
        // now, beside this read, not after it.
        const at = performance.now();
        const mpls = exists('/proc/sys/net/mpls') ? this.readMpls(String(owner.routeProtocol)) : undefined;
        const nft = this.listNftTables(owner);
        // Read for later; a failure is the apply's to report (it awaits the same promise), never unhandled here.
        for (const p of [mpls, nft]) p?.catch(() => undefined);
        this.earlyReads.set(owner.name, { at, mpls, nft });
      }
      const { value, at } = await this.readOwnerIp(owner);
      this.freshReads.set(`plain ${String(owner.routeProtocol)}`, { value, at });
      return interfaceInfos(value[0][1] ?? []);
    }
    const read = async () => {
      const r = await this.exec('ip', ['-json', 'address', 'show']);
      if (r.exitCode !== 0) throw new Error(`ip -json address show (${this.where}): ${r.stderr || `exit ${r.exitCode}`}`);
      return JSON.parse(r.stdout || '[]') as Json[];
    };
    return interfaceInfos(this.monitor ? (await this.monitor.reuse('interfaces', read)).value : await read());
  }

  /**
   * The owner's links, addresses, routes, rules and permanent neighbours as `ip -json` prints them: reused when the
   * monitor says nothing changed, or when {@link interfaces} read them for this owner a moment ago (a plugin that
   * reads the underlay and then applies pays one `ip`, not two).
   */
  private async readOwnerIp(owner: KernelOwner): Promise<{ value: IpRead; processes: number; at: number }> {
    const proto = String(owner.routeProtocol);
    // An owner without a rule priority range has no rules (normalize refuses them), and then one `ip` reads it all:
    // addresses and neighbours of both families come without a family flag, routes by family with `root 0.0.0.0/0`
    // and `root ::/0` (without one, `table all` lists both families, and without `table all` only IPv4). Rules
    // have no such selector, so an owner with rules reads each family apart.
    const rulesToo = owner.rulePriorities !== undefined;
    const key = `${rulesToo ? 'rules' : 'plain'} ${proto}`;
    const fresh = this.freshReads.get(key);
    this.freshReads.delete(key);
    if (fresh !== undefined && performance.now() - fresh.at <= FRESH_READ_MS) return { value: fresh.value, processes: 0, at: fresh.at };
    const at = performance.now();
    const readIp = async (): Promise<IpRead> => {
      if (rulesToo) {
        return Promise.all([
          this.readBatch(4, ['link show', 'address show', `route show table all proto ${proto}`, 'rule show', 'neigh show nud permanent']),
          this.readBatch(6, ['address show', `route show table all proto ${proto}`, 'rule show', 'neigh show nud permanent']),
        ]);
      }
      const [links, addrs, r4, r6, neigh] = await this.readBatch(undefined, ['link show', 'address show', `route show table all proto ${proto} root 0.0.0.0/0`, `route show table all proto ${proto} root ::/0`, 'neigh show nud permanent']);
      return [[links as Json[], addrs as Json[], r4 as Json[], [], neigh as Json[]], [[], r6 as Json[], [], []]];
    };
    const processes = rulesToo ? 2 : 1;
    if (!this.monitor) return { value: await readIp(), processes, at };
    const { value, reused } = await this.monitor.reuse(key, readIp);
    return { value, processes: reused ? 0 : processes, at };
  }

  async observe(owner: KernelOwner, hints: ObserveHints = {}): Promise<{ state: NormalState; processes: number }> {
    const sysctlKeys = hints.sysctlKeys ?? [];
    const proto = String(owner.routeProtocol);
    // The first read of an owner also looks for MPLS routes and nftables tables that a past run left.
    const first = !this.seen.has(owner.name);
    this.seen.add(owner.name);
    // Without the MPLS module loaded no namespace can hold an MPLS route: no need to ask.
    const wantMpls = hints.mpls === true || this.mplsOwners.has(owner.name) || (first && exists('/proc/sys/net/mpls'));
    const wantNft = hints.nftables === true || first || this.nftOwners.has(owner.name);
    let ipProcesses = 0;
    const readIpOnce = async (): Promise<IpRead> => {
      const r = await this.readOwnerIp(owner);
      ipProcesses = r.processes;
      return r.value;
    };
    // What interfaces() began for this owner's first read, when it is still fresh (a write drops it).
    const early = this.earlyReads.get(owner.name);
    this.earlyReads.delete(owner.name);
    const fresh = early !== undefined && performance.now() - early.at <= FRESH_READ_MS ? early : undefined;
    const [[[links4, addrs4, routes4, rules4, neigh4], [addrs6, routes6, rules6, neigh6]], mplsRead, nftRead] = await Promise.all([
      readIpOnce(),
      wantMpls ? (fresh?.mpls ?? this.readMpls(proto)) : undefined,
      wantNft ? (fresh?.nft ?? this.listNftTables(owner)) : undefined,
    ]);
    let processes = ipProcesses;
    // Links the owner moved into other namespaces (the desired ones, and those seen there before).
    const elsewhere = new Set([...(hints.linkNetns ?? []), ...(this.movedTo.get(owner.name) ?? [])]);
    const movedLinks: NLink[] = [];
    for (const ns of elsewhere) {
      const r = await this.run('ip', ['-n', ns, '-json', '-details', 'link', 'show']);
      processes += 1;
      if (r.exitCode !== 0) continue; // the namespace is gone, and its links with it
      for (const j of JSON.parse(r.stdout || '[]') as Json[]) {
        const link = typeof j.ifname === 'string' && ownsLink(owner, j.ifname) ? parseLink(j) : undefined;
        if (link) movedLinks.push({ ...link, netns: ns });
      }
    }
    this.movedTo.set(owner.name, new Set(movedLinks.map((l) => l.netns as string)));
    let mplsRoutes: NMplsRoute[] = [];
    let nftables: NftTable[] = [];
    const owned = (name: unknown): name is string => typeof name === 'string' && ownsLink(owner, name);

    const links: NLink[] = [];
    for (const j of (links4 ?? []).filter((x) => owned(x.ifname))) {
      const info = (j.linkinfo ?? {}) as Json;
      // A wireguard-go device is a TUN device with a control socket.
      if (info.info_kind === 'tun' && this.isWireGuardGo(j.ifname as string)) {
        links.push({ ...(parseLink({ ...j, linkinfo: { info_kind: 'wireguard' } }) as NLink) });
        continue;
      }
      const link = parseLink(j);
      if (link) links.push(link);
    }
    const linkNames = new Set(links.map((l) => l.name));
    const addresses: Address[] = [];
    for (const j of [...(addrs4 ?? []), ...(addrs6 ?? [])]) {
      if (!linkNames.has(j.ifname as string)) continue;
      for (const a of (j.addr_info ?? []) as Json[]) {
        // IPv6 link-local addresses are the kernel's own, never the owner's.
        if (a.scope === 'link' && a.family === 'inet6') continue;
        addresses.push({ dev: j.ifname as string, address: `${canonicalIP(a.local as string)}/${String(a.prefixlen)}` });
      }
    }
    const routes = [
      ...(routes4 ?? []).map((j) => parseRoute(j, 4)),
      ...(routes6 ?? []).map((j) => parseRoute(j, 6)),
    ].filter((r): r is NRoute => r !== undefined);
    const [min, max] = owner.rulePriorities ?? [1, 0];
    const rules = [...(rules4 ?? []).map((j) => parseRule(j, 4)), ...(rules6 ?? []).map((j) => parseRule(j, 6))].filter(
      (r) => r.priority >= min && r.priority <= max,
    );
    const neighbours: Neighbour[] = [...(neigh4 ?? []), ...(neigh6 ?? [])]
      .filter((j) => linkNames.has(j.dev as string) && typeof j.lladdr === 'string')
      .map((j) => ({ dev: j.dev as string, address: canonicalIP(j.dst as string) as string, lladdr: (j.lladdr as string).toLowerCase() }));

    let fdb: FdbEntry[] = [];
    if (links.some((l) => l.kind === 'vxlan')) {
      const r = await this.exec('bridge', ['-json', 'fdb', 'show']);
      processes += 1;
      if (r.exitCode !== 0) throw new Error(`bridge -json fdb show (${this.where}): ${r.stderr}`);
      fdb = (JSON.parse(r.stdout || '[]') as Json[])
        .filter((j) => linkNames.has(j.ifname as string) || linkNames.has(j.dev as string))
        .filter((j) => typeof j.dst === 'string')
        .map((j) => ({ dev: (j.ifname ?? j.dev) as string, lladdr: (j.mac as string).toLowerCase(), dst: canonicalIP(j.dst as string) as string }));
    }

    let wireguard: NWireGuard[] = [];
    const wgNames = new Set(links.filter((l) => l.kind === 'wireguard').map((l) => l.name));
    if (wgNames.size > 0) {
      const dump = await this.wgDump(wgNames);
      processes += dump.processes;
      wireguard = parseWgDump(dump.text, wgNames);
    }

    const sysctls: Sysctl[] = [];
    if (sysctlKeys.length > 0) {
      if (this.netns.kind === 'own') {
        for (const key of sysctlKeys) {
          // A file of /proc, read through a descriptor kept open (ProcFiles): one pread, never a wait on a disk.
          const value = this.procFiles.read(sysctlPath(key, this.procSys));
          if (value !== undefined) sysctls.push({ key, value: value.trim().replace(/\s+/g, ' ') });
        }
      } else {
        const r = await this.exec('sysctl', ['-e', ...sysctlKeys]);
        processes += 1;
        for (const line of r.stdout.split('\n')) {
          const m = /^(\S+) = (.*)$/.exec(line);
          if (m) sysctls.push({ key: m[1] as string, value: (m[2] as string).trim().replace(/\s+/g, ' ') });
        }
      }
    }
    if (mplsRead) {
      processes += 1;
      mplsRoutes = mplsRead;
      if (mplsRoutes.length > 0) this.mplsOwners.add(owner.name);
      else this.mplsOwners.delete(owner.name);
    }
    if (nftRead) {
      processes += nftRead.processes;
      nftables = nftRead.tables;
      if (nftables.length > 0) this.nftOwners.add(owner.name);
      else this.nftOwners.delete(owner.name);
    }
    links.push(...movedLinks);
    return { state: { links, addresses, routes, mplsRoutes, rules, neighbours, fdb, sysctls, wireguard, nftables }, processes };
  }

  async execute(owner: KernelOwner, changes: readonly Change[]): Promise<number> {
    // Whatever was read before is not what the kernel holds after this.
    this.lastWgDump = undefined;
    this.freshReads.clear();
    this.earlyReads.clear();
    this.monitor?.forget();
    try {
      return await this.executeChanges(owner, changes);
    } finally {
      this.lastWgDump = undefined;
      this.monitor?.forget();
    }
  }

  private async executeChanges(owner: KernelOwner, changes: readonly Change[]): Promise<number> {
    const segments = batches(changes);
    const applied: Change[] = [];
    let processes = 0;
    const newWireGuard = changes.filter((c) => c.kind === 'link' && c.op === 'add' && (c.object as NLink).kind === 'wireguard');
    const userspace = newWireGuard.length > 0 && (await this.wireguardImplementation()) === 'userspace';
    let started = false;
    // WireGuard peers do not wait for the `ip` batch when the device already exists (or wireguard-go made it):
    // the two run side by side. A kernel WireGuard link made by this batch must exist first.
    const ipAdds = segments.find((x) => x.tool === 'ip' && !x.deleting);
    const wgAdds = segments.find((x) => x.tool === 'wg' && !x.deleting);
    const wgBesideIp = ipAdds && !(newWireGuard.length > 0 && !userspace) ? wgAdds : undefined;
    const runSegment = async (segment: (typeof segments)[number]): Promise<number> => {
      if (segment.tool === 'sysctl') return this.writeSysctls(segment.changes, applied);
      if (segment.tool === 'nft') return this.writeNftables(segment.changes, applied);
      if (segment.tool === 'wg') return this.writeWireGuard(segment.changes, applied);
      return this.writeBatch(owner, segment, applied, userspace);
    };
    for (const segment of segments) {
      if (userspace && !started && !segment.deleting) {
        // After the deletions (a recreated device must be gone first), before anything that needs the device.
        started = true;
        processes += await this.startWireGuardGo(newWireGuard, applied);
      }
      if (segment === wgBesideIp) continue; // run beside the ip batch
      if (segment === ipAdds && wgBesideIp) {
        const [a, b] = await Promise.all([runSegment(segment), runSegment(wgBesideIp)]);
        processes += a + b;
      } else {
        processes += await runSegment(segment);
      }
    }
    return processes;
  }

  /** One `ip -batch -` (or `ip -6`, `ip -f mpls`, `bridge`) for a segment; maps a failing line to its change. */
  private async writeBatch(owner: KernelOwner, segment: { tool: Tool; changes: Change[] }, applied: Change[], userspace: boolean): Promise<number> {
    // Lines for this namespace first, then those for links that live in another (created here, then moved there).
    const groups = new Map<string | undefined, { lines: string[]; owners: Change[] }>([[undefined, { lines: [], owners: [] }]]);
    for (const change of segment.changes) {
      for (const line of ipLines(owner, change, { userspaceWireGuard: userspace })) {
        const ns = line[0] === NETNS_MARK ? line[1] : undefined;
        const group = groups.get(ns) ?? { lines: [], owners: [] };
        groups.set(ns, group);
        group.lines.push((ns === undefined ? line : line.slice(2)).join(' '));
        group.owners.push(change);
      }
    }
    let processes = 0;
    for (const [ns, { lines, owners }] of groups) {
      if (lines.length === 0) continue;
      const tool = segment.tool === 'bridge' ? 'bridge' : 'ip';
      const args = segment.tool === 'ip6' ? ['-6', '-batch', '-'] : segment.tool === 'mpls' ? ['-f', 'mpls', '-batch', '-'] : ['-batch', '-'];
      const input = `${lines.join('\n')}\n`;
      const r = ns === undefined ? await this.exec(tool, args, input) : await this.run(tool, ['-n', ns, ...args], input);
      processes += 1;
      if (r.exitCode !== 0) {
        const m = /Command failed -:(\d+)/.exec(r.stderr);
        const index = m ? Number(m[1]) - 1 : 0;
        const failed = owners[index] ?? owners[0];
        if (!failed) throw new Error(`${tool} -batch (${ns ?? this.where}): ${r.stderr}`);
        applied.push(...new Set(owners.slice(0, index).filter((c) => c !== failed)));
        const reason = r.stderr.replace(/\n?Command failed -:\d+\s*$/, '').trim() || `exit ${r.exitCode}`;
        throw new KernelApplyError(failed, reason, applied);
      }
    }
    applied.push(...segment.changes);
    return processes;
  }

  /** The owner's MPLS routes; a kernel without MPLS has none (applying one then fails with the kernel's message). */
  private async readMpls(proto: string): Promise<NMplsRoute[]> {
    const r = await this.exec('ip', ['-f', 'mpls', '-json', 'route', 'show', 'proto', proto]);
    if (r.exitCode !== 0) return [];
    return (JSON.parse(r.stdout || '[]') as Json[]).map(parseMpls).filter((m): m is NMplsRoute => m !== undefined);
  }

  private readonly probed = new Map<string, Promise<DoctorReport>>();

  /**
   * What this machine supports (`only` these capabilities); probed once per question, in a throwaway namespace.
   * WireGuard is answered by the question the first device asks anyway ({@link wireguardImplementation}: one
   * throwaway link in this namespace) and wireguard-go on PATH, not by a namespace of its own: at an agent's start
   * that was three processes in a row before the first reconcile.
   */
  probe(only?: readonly Capability[]): Promise<DoctorReport> {
    const key = only === undefined ? '*' : [...new Set(only)].sort().join(',');
    let report = this.probed.get(key);
    if (!report) {
      // `wireguard: kernel` settles the implementation without asking: the throwaway namespace asks the kernel.
      report = only?.includes('wireguard') && this.wireguard !== 'kernel' ? this.probeWithWireGuard(only) : probeMachine(only);
      this.probed.set(key, report);
    }
    return report;
  }

  private async probeWithWireGuard(only: readonly Capability[]): Promise<DoctorReport> {
    const rest = only.filter((c) => c !== 'wireguard');
    const [implementation, wireguardGo, others] = await Promise.all([
      this.wireguardImplementation(),
      which('wireguard-go'),
      rest.length > 0 ? probeMachine(rest) : undefined,
    ]);
    const check: Check =
      implementation === 'kernel'
        ? { name: 'link wireguard', ok: true, detail: 'supported' }
        : wireguardGo
          ? { name: 'link wireguard', ok: true, detail: `no kernel module; weft runs wireguard-go (userspace, ${wireguardGo})` }
          : { name: 'link wireguard', ok: false, detail: 'no kernel module, and no wireguard-go on PATH', fix: WIREGUARD_FIX };
    return { kernel: others?.kernel ?? (release() || 'unknown'), checks: [...(others?.checks ?? []), check] };
  }

  /** Whether this namespace gets kernel WireGuard or wireguard-go (`auto` probes once with a throwaway link). */
  wireguardImplementation(): Promise<'kernel' | 'userspace'> {
    if (this.wireguard !== 'auto') return Promise.resolve(this.wireguard);
    this.wireguardResolved ??= (async () => {
      // Loaded or built in (its version shows in /sys/module either way): the kernel's, no probe. A kernel that
      // cannot load modules and has none: userspace, no probe. Otherwise a throwaway link tells, and loads the
      // module where there is one (an `ip` process and ~20-40 ms at every agent's start, off the join's path now).
      if (exists('/sys/module/wireguard')) return 'kernel';
      if (!exists('/proc/sys/kernel/modprobe')) return 'userspace';
      const probe = `weftwgp${process.pid % 100000}`;
      const r = await this.exec('ip', ['link', 'add', probe, 'type', 'wireguard']);
      if (r.exitCode !== 0) return 'userspace';
      await this.exec('ip', ['link', 'del', probe]);
      return 'kernel';
    })();
    return this.wireguardResolved;
  }

  /** Starts one wireguard-go per new device; it daemonises once its TUN device exists, and outlives the agent. */
  private async startWireGuardGo(links: readonly Change[], applied: Change[]): Promise<number> {
    let processes = 0;
    for (const change of links) {
      const name = (change.object as NLink).name;
      const socket = join(WIREGUARD_SOCKET_DIR, `${name}.sock`);
      // wireguard-go's control sockets share one directory across namespaces. A live one here belongs to a device of
      // the same name in another namespace: never take it over. A dead one (its wireguard-go died) is cleared.
      if (await socketAnswers(socket)) {
        throw new KernelApplyError(
          change,
          `${socket} is in use by a wireguard-go of another network namespace; give each namespace's device its own name, or run each agent in its own mount namespace`,
          applied,
        );
      }
      await rm(socket, { force: true });
      const r = await this.exec('wireguard-go', [name]);
      processes += 1;
      if (r.exitCode !== 0) {
        // Its last line says why, past the box it draws where the kernel has WireGuard ("not required because…").
        const why = `${r.stderr}\n${r.stdout}`.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^[┌│└]/.test(l)).at(-1);
        throw new KernelApplyError(change, `wireguard-go ${name}: ${why ?? `exit ${String(r.exitCode)}`}`, applied);
      }
    }
    return processes;
  }

  /**
   * Per device, one `set=1` request on a wireguard-go device's control socket; for kernel WireGuard, the `wg set`
   * runs (split below the kernel's argument limits; long allowed-IP lists by `wg addconf`). Keys and configs for `wg`
   * go through private files in a fresh directory under the scratch directory, never the command line, and are
   * removed right after.
   */
  private async writeWireGuard(changes: Change[], applied: Change[]): Promise<number> {
    const byDevice = new Map<string, Change[]>();
    for (const c of changes) {
      const device = c.kind === 'wireguard' ? (c.object as WireGuardDevice).name : (c.object as WireGuardPeer & { device: string }).device;
      const list = byDevice.get(device);
      if (list) list.push(c);
      else byDevice.set(device, [c]);
    }
    const viaWg = new Map<string, Change[]>();
    for (const [device, list] of byDevice) {
      const socket = join(WIREGUARD_SOCKET_DIR, `${device}.sock`);
      if (!exists(socket)) {
        viaWg.set(device, list);
        continue;
      }
      let answer;
      try {
        answer = await uapiRequest(socket, uapiSetRequest(list));
      } catch (err) {
        throw new KernelApplyError(list[0] as Change, `wireguard-go ${device}: ${describeError(err)}`, applied);
      }
      if (answer.errno !== 0) {
        const name = Object.entries(osConstants.errno).find(([, n]) => n === Math.abs(answer.errno))?.[0];
        throw new KernelApplyError(list[0] as Change, `wireguard-go ${device}: set=1 answered errno ${String(answer.errno)}${name ? ` (${name})` : ''}`, applied);
      }
      applied.push(...list);
    }
    return viaWg.size > 0 ? this.writeWithWg(viaWg, applied) : 0;
  }

  private async writeWithWg(byDevice: Map<string, Change[]>, applied: Change[]): Promise<number> {
    let processes = 0;
    await mkdir(this.scratchDir, { recursive: true, mode: 0o700 });
    const dir = await mkdtemp(join(this.scratchDir, 'weft-wg-'));
    try {
      for (const [device, list] of byDevice) {
        let n = 0;
        const secrets: [string, string][] = [];
        const plan = wgWritePlan(device, list, (secret) => {
          const path = join(dir, `k${n++}`);
          secrets.push([path, secret]);
          return path;
        });
        for (const [path, secret] of secrets) await writeFile(path, `${secret}\n`, { mode: 0o600 });
        const runs: string[][] = plan.sets.map((a) => [...a]);
        if (plan.conf !== undefined) {
          const conf = join(dir, `${device}.conf`);
          await writeFile(conf, plan.conf, { mode: 0o600 });
          runs.push(['addconf', device, conf]);
        }
        for (const args of runs) {
          const r = await this.exec('wg', args);
          processes += 1;
          if (r.exitCode !== 0) throw new KernelApplyError(list[0] as Change, `wg ${args[0] ?? ''}: ${r.stderr.trim() || `exit ${r.exitCode}`}`, applied);
        }
        applied.push(...list);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return processes;
  }

  /**
   * The owner's tables as the kernel lists them (`nft list ruleset`, one process). A table whose listing is what it
   * was right after weft applied it reports the body weft applied; any other (changed by hand, or left from a past
   * run) reports a body that matches nothing, so the diff replaces it.
   */
  private async listNftTables(owner: KernelOwner): Promise<{ tables: NftTable[]; processes: number }> {
    this.nftMissing ??= (await which('nft')) === undefined;
    if (this.nftMissing) return { tables: [], processes: 0 };
    // Terse (-t): without the elements of named sets, which a 65,537-bucket map would make a megabyte to read.
    const r = await this.exec('nft', ['-t', 'list', 'ruleset']);
    if (r.exitCode !== 0) throw new Error(`nft list ruleset (${this.where}): ${r.stderr}`);
    const prefix = nftPrefix(owner);
    const tables: NftTable[] = [];
    for (const [key, listing] of splitRuleset(r.stdout)) {
      const [family, name] = key.split(' ') as [NftTable['family'], string];
      if (name !== prefix && !name.startsWith(`${prefix}-`)) continue;
      const applied = this.nftApplied.get(key);
      tables.push(applied && applied.listing === listing ? { ...applied.table } : { family, name, body: '\0changed outside weft' });
    }
    return { tables, processes: 1 };
  }

  /** All table changes in one `nft -f -` transaction: each table deleted and created again whole. */
  private async writeNftables(changes: Change[], applied: Change[]): Promise<number> {
    if (this.nftMissing) throw new KernelApplyError(changes[0] as Change, 'nft is not installed (Debian: apt-get install nftables)', applied);
    const lines: string[] = [];
    const owners: Change[] = [];
    const push = (change: Change, text: string) => {
      for (const line of text.split('\n')) {
        lines.push(line);
        owners.push(change);
      }
    };
    const after = new Map<string, NftTable | undefined>();
    for (const change of changes) {
      const t = change.object as NftTable;
      const key = `${t.family} ${t.name}`;
      const table = `${t.family} ${t.name}`;
      if (change.op === 'set') {
        // Only elements and counters: removals first, counters before the elements that name them.
        const d = change.object as NftElementChange;
        const before = this.nftApplied.get(key)?.table;
        for (const [set, keys] of Object.entries(d.remove)) for (const chunk of chunks(keys)) push(change, `delete element ${table} ${set} { ${chunk.join(', ')} }`);
        for (const c of d.addCounters) push(change, `add counter ${table} ${c}`);
        for (const [set, list] of Object.entries(d.add)) for (const chunk of chunks(list)) push(change, `add element ${table} ${set} { ${chunk.join(', ')} }`);
        for (const c of d.removeCounters) push(change, `delete counter ${table} ${c}`);
        after.set(key, before ? withElementChange(before, d) : undefined);
        continue;
      }
      // `table … {}` first, so that `delete` finds a table whether or not one exists.
      push(change, `table ${table} {}\ndelete table ${table}`);
      if (change.op === 'delete') {
        after.set(key, undefined);
        continue;
      }
      push(change, `table ${table} {}`);
      for (const c of t.counters ?? []) push(change, `add counter ${table} ${c}`);
      push(change, `table ${table} {\n${t.body}\n}`);
      for (const [set, list] of Object.entries(t.elements ?? {})) for (const chunk of chunks(list)) push(change, `add element ${table} ${set} { ${chunk.join(', ')} }`);
      after.set(key, t);
    }
    const r = await this.exec('nft', ['-f', '-'], `${lines.join('\n')}\n`);
    let processes = 1;
    if (r.exitCode !== 0) {
      const m = /\/dev\/stdin:(\d+):/.exec(r.stderr);
      const failed = owners[m ? Number(m[1]) - 1 : 0] ?? changes[0];
      if (!failed) throw new Error(`nft -f (${this.where}): ${r.stderr}`);
      throw new KernelApplyError(failed, r.stderr.split('\n')[0]?.replace(/^\/dev\/stdin:[\d:-]+ /, '') ?? 'nft failed', applied);
    }
    // Remember what the kernel lists for each table now (tersely, as it is read), to tell later drift from our own state.
    const listed = await this.exec('nft', ['-t', 'list', 'ruleset']);
    processes += 1;
    const now = splitRuleset(listed.stdout);
    for (const [key, table] of after) {
      if (table === undefined) this.nftApplied.delete(key);
      else this.nftApplied.set(key, { table, listing: now.get(key) ?? '' });
    }
    applied.push(...changes);
    return processes;
  }

  private async writeSysctls(changes: Change[], applied: Change[]): Promise<number> {
    if (this.netns.kind === 'own') {
      for (const change of changes) {
        const s = change.object as Sysctl;
        try {
          await writeFile(sysctlPath(s.key, this.procSys), s.value);
        } catch (err) {
          throw new KernelApplyError(change, describeError(err), applied);
        }
        applied.push(change);
      }
      return 0;
    }
    const r = await this.exec('sysctl', ['-w', ...changes.map((c) => `${(c.object as Sysctl).key}=${(c.object as Sysctl).value}`)]);
    if (r.exitCode !== 0) {
      const failed = changes.find((c) => r.stderr.includes((c.object as Sysctl).key)) ?? changes[0];
      if (!failed) throw new Error(`sysctl -w (${this.where}): ${r.stderr}`);
      throw new KernelApplyError(failed, r.stderr.trim(), applied);
    }
    applied.push(...changes);
    return 1;
  }
}

/**
 * Whether a path exists. Only ever asked of /proc and /var/run (in-memory filesystems that answer at once): a plain
 * stat, not a promise round trip through the thread pool, since a steady reconcile asks several times.
 */
function exists(path: string): boolean {
  return existsSync(path);
}

