import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalIP } from '@weft/core';

/**
 * A network namespace of the node: held by a process (`/proc/<pid>/ns/net`: every container runtime's pod has a
 * process in it, its pause or first container) or bind-mounted by name (`/run/netns/<name>`: `ip netns`, the
 * lab's pods, runtimes that pin namespaces there). `id` is the namespace's identity (device and inode of its nsfs
 * file): the same namespace reached both ways is one.
 */
export interface Netns {
  readonly id: string;
  /** A path that opens it: `/proc/<pid>/ns/net` or `/run/netns/<name>`. */
  readonly path: string;
  readonly pid?: number;
  readonly name?: string;
}

/** Where to look: the host's /proc (the DaemonSet needs `hostPID`) and its /run/netns (mounted into the pod). */
export interface NetnsRoots {
  readonly proc: string;
  readonly runNetns: string;
}

export const DEFAULT_ROOTS: NetnsRoots = { proc: '/proc', runNetns: '/run/netns' };

/** The most namespaces one scan looks at: a node's pods are bounded (kubelet's max-pods is 110 by default). */
export const MAX_NAMESPACES = 4096;

const idOf = async (path: string): Promise<string | undefined> => {
  try {
    const s = await stat(path); // follows the nsfs link: the namespace's own inode
    return `${String(s.dev)}:${String(s.ino)}`;
  } catch {
    return undefined; // gone meanwhile, or not ours to see (another user namespace's process)
  }
};

/**
 * The node's network namespaces but its own (the agent runs in the host's), each once: the processes' (lowest PID
 * first) and the named ones no process holds.
 */
export async function listNetns(roots: NetnsRoots = DEFAULT_ROOTS): Promise<Netns[]> {
  const own = await idOf(join(roots.proc, 'self/ns/net'));
  const seen = new Set<string>(own !== undefined ? [own] : []);
  const out: Netns[] = [];
  const pids = (await readdir(roots.proc).catch(() => []))
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    if (out.length >= MAX_NAMESPACES) break;
    const path = join(roots.proc, String(pid), 'ns/net');
    const id = await idOf(path);
    if (id === undefined || seen.has(id)) continue;
    seen.add(id);
    out.push({ id, path, pid });
  }
  for (const name of (await readdir(roots.runNetns).catch(() => [])).sort()) {
    if (out.length >= MAX_NAMESPACES) break;
    const path = join(roots.runNetns, name);
    const id = await idOf(path);
    if (id === undefined || seen.has(id)) continue;
    seen.add(id);
    out.push({ id, path, name });
  }
  return out;
}

/** The local addresses in `/proc/<pid>/net/fib_trie` (IPv4: the `/32 host LOCAL` leaves). */
export function parseFibTrie(text: string): string[] {
  const out = new Set<string>();
  let last: string | undefined;
  for (const line of text.split('\n')) {
    const leaf = /\|-- (\d+\.\d+\.\d+\.\d+)$/.exec(line.trim().startsWith('|--') ? line.trim() : '');
    if (leaf) {
      last = leaf[1];
      continue;
    }
    if (last !== undefined && /\/32 host LOCAL/.test(line) && !last.startsWith('127.')) out.add(last);
  }
  return [...out];
}

/** The addresses in `/proc/<pid>/net/if_inet6` (IPv6; link-local and loopback left out). */
export function parseIfInet6(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const hex = line.trim().split(/\s+/)[0];
    if (hex === undefined || !/^[0-9a-f]{32}$/.test(hex)) continue;
    const ip = canonicalIP(hex.match(/.{4}/g)?.join(':') ?? '');
    if (ip !== undefined && ip !== '::1' && !ip.startsWith('fe80:')) out.push(ip);
  }
  return out;
}

/** How a named namespace that no process holds is read: its addresses (the kernel service's `ip -n NAME`). */
export type ReadNamed = (name: string) => Promise<readonly string[]>;

/** The addresses of one namespace: from /proc without a process where one holds it, else through `readNamed`. */
export async function addressesOf(ns: Netns, roots: NetnsRoots, readNamed: ReadNamed): Promise<string[]> {
  if (ns.pid !== undefined) {
    const dir = join(roots.proc, String(ns.pid), 'net');
    const [v4, v6] = await Promise.all([readFile(join(dir, 'fib_trie'), 'utf8').catch(() => ''), readFile(join(dir, 'if_inet6'), 'utf8').catch(() => '')]);
    return [...parseFibTrie(v4), ...parseIfInet6(v6)];
  }
  return ns.name !== undefined ? [...(await readNamed(ns.name))].map((a) => canonicalIP(a) ?? a) : [];
}

/**
 * Finds a pod's network namespace by the pod's IP, whatever the container runtime: among the node's namespaces
 * ({@link listNetns}), the one that holds the address — and none when two do. Found namespaces are remembered by
 * address; a remembered one is checked before it is returned (still there, the same namespace, still holding the
 * address), so a pod that was deleted and made again with the same IP is found again. Scans read /proc; a named
 * namespace no process holds costs one `readNamed`.
 */
export class PodNetnsFinder {
  private readonly known = new Map<string, Netns>();
  /** Addresses held by more than one namespace: ambiguous, so never answered (a pod must not capture another's). */
  private readonly contested = new Map<string, readonly Netns[]>();
  /** How many scans of every namespace have run (what a cache miss costs). */
  scans = 0;

  constructor(
    private readonly readNamed: ReadNamed,
    private readonly roots: NetnsRoots = DEFAULT_ROOTS,
  ) {}

  /** The namespace holding `podIP`; undefined when none does, or when more than one does ({@link contestedBy}). */
  async find(podIP: string): Promise<Netns | undefined> {
    const ip = canonicalIP(podIP);
    if (ip === undefined) return undefined;
    const cached = this.known.get(ip);
    if (cached && (await idOf(cached.path)) === cached.id && (await addressesOf(cached, this.roots, this.readNamed)).includes(ip)) return cached;
    await this.scan();
    return this.known.get(ip);
  }

  /** The namespaces that all hold `podIP`, when more than one did at the last scan. */
  contestedBy(podIP: string): readonly Netns[] {
    return this.contested.get(canonicalIP(podIP) ?? podIP) ?? [];
  }

  /** Reads every namespace, then maps each address held by exactly one namespace to it. */
  private async scan(): Promise<void> {
    this.scans += 1;
    const holders = new Map<string, Netns[]>();
    for (const ns of await listNetns(this.roots)) {
      for (const a of new Set(await addressesOf(ns, this.roots, this.readNamed))) holders.set(a, [...(holders.get(a) ?? []), ns]);
    }
    this.known.clear();
    this.contested.clear();
    for (const [a, list] of holders) {
      if (list.length === 1) this.known.set(a, list[0] as Netns);
      else this.contested.set(a, list);
    }
  }
}
