import { readFile, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { describeError } from '../api/errors.js';
import { type ApplyResult, applyDesired, KernelApplyError, type KernelBackend } from './driver.js';
import { canonicalIP, type Family, parsePrefix } from './ip.js';
import type { Address, Change, DesiredState, FdbEntry, KernelOwner, Neighbour, Sysctl } from './model.js';
import type { NLink, NormalState, NRoute, NRule } from './normalize.js';

/** Which network namespace a driver acts in. */
export type NetnsRef = { readonly kind: 'own' } | { readonly kind: 'named'; readonly name: string } | { readonly kind: 'path'; readonly path: string };

/** Runs a program with arguments (never a shell); stdin optional. Swappable for tests. */
export type Runner = (file: string, args: readonly string[], input?: string) => Promise<{ stdout: string; stderr: string; exitCode: number }>;

const defaultRunner: Runner = async (file, args, input) => {
  const r = await execa(file, args, { input, reject: false, timeout: 60_000, stripFinalNewline: true });
  if (r.failed && r.exitCode === undefined) throw new Error(`${file}: ${r.shortMessage}`);
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? 1 };
};

const TABLES: Record<string, number> = { main: 254, local: 255, default: 253 };
const tableNumber = (t: unknown): number => (typeof t === 'string' && t in TABLES ? (TABLES[t] as number) : Number(t ?? 254));

type Json = Record<string, unknown>;

/** Renders one change as `ip -batch` lines (without the leading `ip`). */
export function ipLines(owner: KernelOwner, change: Change): string[][] {
  const o = change.object;
  switch (change.kind) {
    case 'link': {
      const l = o as NLink;
      if (change.op === 'delete') return [['link', 'del', 'dev', l.name]];
      const set = ['link', 'set', 'dev', l.name];
      const fields = change.op === 'set' ? (change.fields ?? []) : ['mtu', 'address', 'master', 'up'];
      if (fields.includes('mtu') && l.mtu !== undefined) set.push('mtu', String(l.mtu));
      if (fields.includes('address') && l.address !== undefined) set.push('address', l.address);
      if (fields.includes('master')) set.push(...(l.master !== undefined ? ['master', l.master] : change.op === 'set' ? ['nomaster'] : []));
      if (fields.includes('up')) set.push(l.up ? 'up' : 'down');
      const lines = change.op === 'add' ? [linkAdd(l)] : [];
      if (set.length > 4) lines.push(set);
      // The local end of a new veth pair comes up with it.
      if (change.op === 'add' && l.kind === 'veth' && l.peerNetns === undefined && l.up) lines.push(['link', 'set', 'dev', l.peer, 'up']);
      return lines;
    }
    case 'address': {
      const a = o as Address;
      return [['address', change.op === 'delete' ? 'del' : 'replace', a.address, 'dev', a.dev]];
    }
    case 'route': {
      const r = o as NRoute;
      const id = [r.dst, 'table', String(r.table), 'metric', String(r.metric), 'proto', String(owner.routeProtocol)];
      if (change.op === 'delete') return [['route', 'del', ...id]];
      const line = ['route', 'replace', r.dst];
      if (r.mpls.length > 0) line.push('encap', 'mpls', r.mpls.join('/'));
      if (r.via !== undefined) line.push('via', r.via);
      if (r.dev !== undefined) line.push('dev', r.dev);
      if (r.src !== undefined) line.push('src', r.src);
      line.push(...id.slice(1));
      if (r.onlink) line.push('onlink');
      return [line];
    }
    case 'rule': {
      const r = o as NRule;
      const line = ['rule', change.op === 'delete' ? 'del' : 'add', 'priority', String(r.priority)];
      if (r.fwmark !== undefined) line.push('fwmark', `0x${r.fwmark.toString(16)}/0x${(r.fwmask ?? 0xffffffff).toString(16)}`);
      if (r.from !== undefined) line.push('from', r.from);
      if (r.to !== undefined) line.push('to', r.to);
      line.push('table', String(r.table));
      return [line];
    }
    case 'neighbour': {
      const n = o as Neighbour;
      if (change.op === 'delete') return [['neigh', 'del', n.address, 'dev', n.dev]];
      return [['neigh', 'replace', n.address, 'lladdr', n.lladdr, 'dev', n.dev, 'nud', 'permanent']];
    }
    case 'fdb': {
      const f = o as FdbEntry;
      return [['fdb', change.op === 'delete' ? 'del' : 'append', f.lladdr, 'dev', f.dev, 'dst', f.dst]];
    }
    case 'sysctl':
      return [];
  }
}

function linkAdd(l: NLink): string[] {
  const line = ['link', 'add', 'name', l.name, 'type', l.kind];
  switch (l.kind) {
    case 'veth':
      line.push('peer', 'name', l.peer, ...(l.peerNetns !== undefined ? ['netns', l.peerNetns] : []));
      break;
    case 'vxlan':
      line.push('id', String(l.vni), 'dstport', String(l.port ?? 4789));
      if (l.local !== undefined) line.push('local', l.local);
      if (l.dev !== undefined) line.push('dev', l.dev);
      line.push(l.learning ? 'learning' : 'nolearning');
      break;
    case 'gre':
    case 'ip6gre':
    case 'ipip':
      line.push('remote', l.remote);
      if (l.local !== undefined) line.push('local', l.local);
      if ('key' in l && l.key !== undefined) line.push('key', String(l.key));
      if (l.ttl !== undefined) line.push('ttl', String(l.ttl));
      break;
    default:
      break;
  }
  return line;
}

type Tool = 'ip' | 'ip6' | 'bridge' | 'sysctl';

/**
 * Which tool runs a change: `ip`; `ip -6` for IPv6 rules (`ip rule` assumes IPv4 unless told, even for an IPv6
 * `from`); `bridge` for FDB entries; a sysctl write.
 */
function toolOf(change: Change): Tool {
  if (change.kind === 'fdb') return 'bridge';
  if (change.kind === 'sysctl') return 'sysctl';
  if (change.kind === 'rule' && (change.object as NRule).family === 6) return 'ip6';
  return 'ip';
}

/**
 * Groups changes into one batch per tool, deletions before additions. Within a tool the diff's order stands; across
 * tools only links matter (FDB entries and sysctls need their link), so FDB deletions go before the `ip` deletions
 * and FDB additions and sysctls after the `ip` additions.
 */
export function batches(changes: readonly Change[]): { tool: Tool; changes: Change[] }[] {
  const order: [boolean, Tool][] = [
    [true, 'bridge'],
    [true, 'ip6'],
    [true, 'ip'],
    [false, 'ip'],
    [false, 'ip6'],
    [false, 'bridge'],
    [false, 'sysctl'],
  ];
  return order
    .map(([deleting, tool]) => ({ tool, changes: changes.filter((c) => (c.op === 'delete') === deleting && toolOf(c) === tool) }))
    .filter((b) => b.changes.length > 0);
}

function parseLink(j: Json): NLink | undefined {
  const info = (j.linkinfo ?? {}) as Json;
  const kind = info.info_kind as string | undefined;
  const data = (info.info_data ?? {}) as Json;
  const flags = (j.flags ?? []) as string[];
  const base = {
    name: j.ifname as string,
    mtu: j.mtu as number,
    up: flags.includes('UP'),
    ...(typeof j.master === 'string' ? { master: j.master } : {}),
    ...(typeof j.address === 'string' ? { address: j.address } : {}),
  };
  switch (kind) {
    case 'bridge':
    case 'dummy':
    case 'wireguard':
      return { ...base, kind };
    case 'veth':
      // `link` names the peer when it is in this namespace; a peer elsewhere shows only its namespace id.
      return { ...base, kind: 'veth', peer: typeof j.link === 'string' ? j.link : undefined } as unknown as NLink;
    case 'vxlan': {
      const local = (data.local ?? data.local6) as string | undefined;
      return {
        ...base,
        kind: 'vxlan',
        vni: data.id as number,
        port: data.port as number,
        learning: data.learning === true,
        ...(local ? { local: canonicalIP(local) } : {}),
        ...(typeof data.link === 'string' ? { dev: data.link } : {}),
      };
    }
    case 'gre':
    case 'ip6gre':
    case 'ipip': {
      const key = data.ikey ?? data.key;
      const keyNumber = typeof key === 'string' && key.includes('.') ? key.split('.').reduce((a, b) => a * 256 + Number(b), 0) : (key as number | undefined);
      return {
        ...base,
        kind,
        remote: canonicalIP(String(data.remote)),
        ...(typeof data.local === 'string' && data.local !== 'any' ? { local: canonicalIP(data.local) } : {}),
        ...(keyNumber ? { key: keyNumber } : {}),
        ...(typeof data.ttl === 'number' && data.ttl !== 0 ? { ttl: data.ttl } : {}),
      } as NLink;
    }
    default:
      return undefined; // a kind weft does not manage: never owned
  }
}

function parseRoute(j: Json, family: Family): NRoute | undefined {
  let dst = j.dst as string;
  if (dst === 'default') dst = family === 4 ? '0.0.0.0/0' : '::/0';
  const p = parsePrefix(dst, { hostDefault: true });
  if (!p) return undefined;
  const flags = (j.flags ?? []) as string[];
  const encap = j.encap === 'mpls' && typeof j.as === 'string' ? j.as : undefined;
  return {
    family,
    dst: `${p.address}/${p.prefix}`,
    table: tableNumber(j.table),
    metric: typeof j.metric === 'number' ? j.metric : 0,
    onlink: flags.includes('onlink'),
    mpls: encap ? encap.split('/').map(Number) : [],
    ...(typeof j.dev === 'string' ? { dev: j.dev } : {}),
    ...(typeof j.gateway === 'string' ? { via: canonicalIP(j.gateway) } : {}),
    ...(typeof j.prefsrc === 'string' ? { src: canonicalIP(j.prefsrc) } : {}),
  };
}

function parseRule(j: Json, family: Family): NRule {
  const side = (addr: unknown, len: unknown): string | undefined => {
    if (typeof addr !== 'string' || addr === 'all') return undefined;
    const bits = typeof len === 'number' ? len : family === 4 ? 32 : 128;
    return `${canonicalIP(addr)}/${bits}`;
  };
  const from = side(j.src, j.srclen);
  const to = side(j.dst, j.dstlen);
  const fwmark = typeof j.fwmark === 'string' ? Number(j.fwmark) : undefined;
  return {
    family,
    priority: j.priority as number,
    table: tableNumber(j.table),
    ...(fwmark !== undefined ? { fwmark, fwmask: typeof j.fwmask === 'string' ? Number(j.fwmask) : 0xffffffff } : {}),
    ...(from ? { from } : {}),
    ...(to ? { to } : {}),
  };
}

/** `/proc/sys` path of a sysctl key (`net.ipv4.conf.eth0/100.forwarding` → `…/conf/eth0.100/forwarding`). */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key
    .split('.')
    .map((part) => part.replaceAll('/', '.'))
    .join('/')}`;
}

/**
 * The real kernel, through iproute2 (`ip`, `bridge`) and `sysctl`, run with argument arrays — never a shell. A
 * read is two `ip -json -batch -` processes (one per family); a write is one `ip -batch -` (plus `ip -6 -batch -`
 * for IPv6 rules and `bridge -batch -` for FDB entries when there are any).
 */
export class Iproute2Kernel implements KernelBackend {
  readonly where: string;
  private readonly run: Runner;

  constructor(
    readonly netns: NetnsRef = { kind: 'own' },
    options: { runner?: Runner } = {},
  ) {
    this.run = options.runner ?? defaultRunner;
    this.where = netns.kind === 'own' ? 'own namespace' : netns.kind === 'named' ? `netns ${netns.name}` : `netns ${netns.path}`;
  }

  /** Diff and apply for an owner. */
  apply(owner: KernelOwner, desired: DesiredState, options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    return applyDesired(this, owner, desired, options);
  }

  /** The command line of `tool` in this namespace: `ip -n NAME …`, or `nsenter --net=PATH ip …`. */
  command(tool: 'ip' | 'bridge' | 'sysctl', args: readonly string[]): [string, string[]] {
    const ns = this.netns;
    if (ns.kind === 'path') return ['nsenter', [`--net=${ns.path}`, tool, ...args]];
    if (tool === 'sysctl') return ns.kind === 'named' ? ['ip', ['netns', 'exec', ns.name, 'sysctl', ...args]] : ['sysctl', [...args]];
    return [tool, ns.kind === 'named' ? ['-n', ns.name, ...args] : [...args]];
  }

  private async exec(tool: 'ip' | 'bridge' | 'sysctl', args: readonly string[], input?: string) {
    const [file, argv] = this.command(tool, args);
    return this.run(file, argv, input);
  }

  private async readBatch(family: Family, lines: string[]): Promise<Json[][]> {
    const r = await this.exec('ip', [`-${family}`, '-json', '-details', '-batch', '-'], `${lines.join('\n')}\n`);
    if (r.exitCode !== 0) throw new Error(`ip -${family} -json -batch (${this.where}): ${r.stderr || `exit ${r.exitCode}`}`);
    const out = r.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as Json[]);
    if (out.length !== lines.length) throw new Error(`ip -${family} -json -batch (${this.where}): expected ${lines.length} answers, got ${out.length}`);
    return out;
  }

  async observe(owner: KernelOwner, sysctlKeys: readonly string[]): Promise<{ state: NormalState; processes: number }> {
    const proto = String(owner.routeProtocol);
    const [[links4, addrs4, routes4, rules4, neigh4], [addrs6, routes6, rules6, neigh6]] = await Promise.all([
      this.readBatch(4, ['link show', 'address show', `route show table all proto ${proto}`, 'rule show', 'neigh show nud permanent']),
      this.readBatch(6, ['address show', `route show table all proto ${proto}`, 'rule show', 'neigh show nud permanent']),
    ]);
    let processes = 2;
    const owned = (name: unknown): name is string => typeof name === 'string' && name.startsWith(owner.linkPrefix);

    const links = (links4 ?? []).filter((j) => owned(j.ifname)).map(parseLink).filter((l): l is NLink => l !== undefined);
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

    const sysctls: Sysctl[] = [];
    if (sysctlKeys.length > 0) {
      if (this.netns.kind === 'own') {
        for (const key of sysctlKeys) {
          const value = await readFile(sysctlPath(key), 'utf8').catch(() => undefined);
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
    return { state: { links, addresses, routes, rules, neighbours, fdb, sysctls }, processes };
  }

  async execute(owner: KernelOwner, changes: readonly Change[]): Promise<number> {
    const segments = batches(changes);
    const applied: Change[] = [];
    let processes = 0;
    for (const segment of segments) {
      if (segment.tool === 'sysctl') {
        processes += await this.writeSysctls(segment.changes, applied);
        continue;
      }
      const lines: string[] = [];
      const owners: Change[] = [];
      for (const change of segment.changes) {
        for (const line of ipLines(owner, change)) {
          lines.push(line.join(' '));
          owners.push(change);
        }
      }
      if (lines.length === 0) {
        applied.push(...segment.changes);
        continue;
      }
      const tool = segment.tool === 'bridge' ? 'bridge' : 'ip';
      const args = segment.tool === 'ip6' ? ['-6', '-batch', '-'] : ['-batch', '-'];
      const r = await this.exec(tool, args, `${lines.join('\n')}\n`);
      processes += 1;
      if (r.exitCode !== 0) {
        const m = /Command failed -:(\d+)/.exec(r.stderr);
        const index = m ? Number(m[1]) - 1 : 0;
        const failed = owners[index] ?? owners[0];
        if (!failed) throw new Error(`${tool} -batch (${this.where}): ${r.stderr}`);
        applied.push(...new Set(owners.slice(0, index).filter((c) => c !== failed)));
        const reason = r.stderr.replace(/\n?Command failed -:\d+\s*$/, '').trim() || `exit ${r.exitCode}`;
        throw new KernelApplyError(failed, reason, applied);
      }
      applied.push(...segment.changes);
    }
    return processes;
  }

  private async writeSysctls(changes: Change[], applied: Change[]): Promise<number> {
    if (this.netns.kind === 'own') {
      for (const change of changes) {
        const s = change.object as Sysctl;
        try {
          await writeFile(sysctlPath(s.key), s.value);
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

