import type { Capability, DoctorReport } from './capabilities.js';
import { type ApplyResult, applyDesired, KernelApplyError, type KernelBackend, type ObserveHints } from './driver.js';
import type { Address, Change, DesiredState, FdbEntry, InterfaceInfo, KernelOwner, Neighbour, NftCounter, NftElementChange, NftTable, Sysctl, WireGuardDevice, WireGuardDeviceStatus, WireGuardPeer, WireGuardPeerStatus } from './model.js';
import { networkContains, parseNetwork } from './ip.js';
import { wireGuardPublicKey } from './wgkeys.js';
import { type NLink, type NMplsRoute, nftPrefix, normalizeDesired, type NormalState, ownsLink, type NPeer, type NRoute, type NRule, type NWireGuard, routeKey, ruleKey } from './normalize.js';

/** A route as the in-memory kernel stores it: with the protocol that marks its owner. */
export type MemoryRoute = NRoute & { readonly proto: number };

/** Everything in the in-memory kernel, owned or not. */
export interface MemoryKernelState {
  readonly links: NLink[];
  readonly addresses: Address[];
  readonly routes: MemoryRoute[];
  readonly mplsRoutes: (NMplsRoute & { readonly proto: number })[];
  readonly rules: NRule[];
  readonly neighbours: Neighbour[];
  readonly fdb: FdbEntry[];
  readonly sysctls: Map<string, string>;
  /** WireGuard devices by link name (a new wireguard link starts with no key and no peers). */
  readonly wireguard: Map<string, NWireGuard>;
  /** nftables tables by `family name`. */
  readonly nftables: Map<string, NftTable>;
}

const FOREIGN: KernelOwner = { name: 'foreign', linkPrefix: 'x', routeProtocol: 100 };

/**
 * An in-memory network namespace that applies the same changes as the real driver, with the kernel's behaviour
 * where the diff relies on it: deleting a link takes its addresses, routes, neighbours and FDB entries with it;
 * adding what exists, or deleting what does not, fails with the kernel's message. For unit tests and the plugin
 * test kit; it passes the same contract suite as {@link Iproute2Kernel}.
 */
export class MemoryKernel implements KernelBackend {
  readonly where = 'in-memory kernel';
  private s: MemoryKernelState = { links: [], addresses: [], routes: [], mplsRoutes: [], rules: [], neighbours: [], fdb: [], sysctls: new Map(), wireguard: new Map(), nftables: new Map() };
  private failures = new Map<string, string>();
  /** Every change executed, in order (tests read it to count writes). */
  readonly log: Change[] = [];
  /** Run-time WireGuard figures tests set per `device/publicKey` (handshakes, transfer, a roamed endpoint). */
  private peerStats = new Map<string, Partial<Pick<WireGuardPeerStatus, 'endpoint' | 'latestHandshake' | 'receiveBytes' | 'transmitBytes'>>>();

  constructor(sysctls: Record<string, string> = { 'net.ipv4.ip_forward': '0', 'net.ipv6.conf.all.forwarding': '0' }) {
    for (const [k, v] of Object.entries(sysctls)) this.s.sysctls.set(k, v);
  }

  /** Other namespaces of this "machine", by path (tests add them: {@link addNamespace}). */
  private readonly namespaces = new Map<string, MemoryKernel>();

  /** Makes a namespace at `path` (a pod's), empty but for its own sysctls; returns its kernel. */
  addNamespace(path: string, sysctls: Record<string, string> = {}): MemoryKernel {
    const k = new MemoryKernel(sysctls);
    this.namespaces.set(path, k);
    return k;
  }

  /** Removes the namespace at `path` (the pod went away); its kernel is gone with it. */
  removeNamespace(path: string): void {
    this.namespaces.delete(path);
  }

  /** The kernel of the namespace at `path`; one that does not exist fails every call, as `nsenter` would. */
  inNamespace(path: string): KernelBackend {
    const gone = () => new Error(`nsenter: cannot open ${path}: No such file or directory`);
    return {
      where: `netns ${path}`,
      observe: async (owner, hints) => {
        const k = this.namespaces.get(path);
        if (!k) throw gone();
        return k.observe(owner, hints);
      },
      execute: async (owner, changes) => {
        const k = this.namespaces.get(path);
        if (!k) throw gone();
        return k.execute(owner, changes);
      },
      probe: async () => {
        const k = this.namespaces.get(path);
        if (!k) throw gone();
        return k.probe();
      },
      wireguardStatus: async (names) => this.namespaces.get(path)?.wireguardStatus(names) ?? [],
      interfaces: async () => {
        const k = this.namespaces.get(path);
        if (!k) throw gone();
        return k.interfaces();
      },
    };
  }

  /** Counters of a table: zero, as no packet passes an in-memory kernel (tests set others with {@link setNftCounter}). */
  async nftCounters(family: NftTable['family'], name: string): Promise<ReadonlyMap<string, NftCounter>> {
    const t = this.s.nftables.get(`${family} ${name}`);
    return new Map((t?.counters ?? []).map((c) => [c, this.counterValues.get(`${family} ${name} ${c}`) ?? { packets: 0, bytes: 0 }]));
  }

  /** Sets what a named counter reports, as traffic would. */
  setNftCounter(family: NftTable['family'], name: string, counter: string, value: NftCounter): void {
    this.counterValues.set(`${family} ${name} ${counter}`, value);
  }

  private readonly counterValues = new Map<string, NftCounter>();

  /** Everything the kernel holds (a copy). */
  snapshot(): MemoryKernelState {
    return structuredClone(this.s);
  }

  /**
   * Adds objects nobody owns (another daemon's), validated like a desired state; `routeProtocol` marks their routes.
   * Used by tests to prove that foreign objects survive.
   */
  addForeign(objects: DesiredState, routeProtocol = 4): void {
    const n = normalizeDesired({ ...FOREIGN, linkPrefix: '', rulePriorities: [1, 32765] }, objects);
    this.s.links.push(...n.links);
    this.s.addresses.push(...n.addresses);
    this.s.routes.push(...n.routes.map((r) => ({ ...r, proto: routeProtocol })));
    this.s.rules.push(...n.rules);
    this.s.neighbours.push(...n.neighbours);
    this.s.fdb.push(...n.fdb);
  }

  /** Removes objects behind the driver's back (drift), as `ip … del` by another hand would. */
  drift(edit: (state: MemoryKernelState) => void): void {
    edit(this.s);
  }

  /** Sets what `wireguardStatus` reports of one peer, as traffic and handshakes would. */
  setPeerStatus(device: string, publicKey: string, status: Partial<Pick<WireGuardPeerStatus, 'endpoint' | 'latestHandshake' | 'receiveBytes' | 'transmitBytes'>>): void {
    this.peerStats.set(`${device}/${publicKey}`, { ...this.peerStats.get(`${device}/${publicKey}`), ...status });
  }

  async wireguardStatus(names: ReadonlySet<string>): Promise<WireGuardDeviceStatus[]> {
    await Promise.resolve();
    return [...this.s.wireguard.values()]
      .filter((d) => names.has(d.name))
      .map((d) => ({
        name: d.name,
        publicKey: d.privateKey ? wireGuardPublicKey(d.privateKey) : '',
        listenPort: d.listenPort ?? 0,
        peers: d.peers.map((p) => {
          const st = this.peerStats.get(`${d.name}/${p.publicKey}`) ?? {};
          const endpoint = st.endpoint ?? p.endpoint;
          return {
            publicKey: p.publicKey,
            ...(endpoint !== undefined ? { endpoint } : {}),
            allowedIPs: [...p.allowedIPs],
            latestHandshake: st.latestHandshake ?? 0,
            receiveBytes: st.receiveBytes ?? 0,
            transmitBytes: st.transmitBytes ?? 0,
            persistentKeepalive: p.persistentKeepalive,
          };
        }),
      }));
  }

  async interfaces(): Promise<InterfaceInfo[]> {
    await Promise.resolve();
    return this.s.links.map((l) => ({
      name: l.name,
      mtu: l.mtu ?? 1500,
      up: l.up !== false,
      addresses: this.s.addresses.filter((a) => a.dev === l.name).map((a) => a.address),
    }));
  }

  /** Makes the change with this id fail once with `message`. */
  failOnce(id: string, message: string): void {
    this.failures.set(id, message);
  }

  /** Everything is supported, unless a test says otherwise with `unsupported`. */
  unsupported = new Set<Capability>();

  async probe(): Promise<DoctorReport> {
    await Promise.resolve();
    const all: Capability[] = ['bridge', 'veth', 'vxlan', 'dummy', 'gre', 'ip6gre', 'ipip', 'wireguard', 'mpls', 'nftables', 'netns'];
    return {
      kernel: 'in-memory',
      checks: all.map((c) => {
        const name = ['mpls', 'nftables'].includes(c) ? c : c === 'netns' ? 'network namespaces' : `link ${c}`;
        return this.unsupported.has(c) ? { name, ok: false, detail: 'unsupported (test)', fix: `provide ${c}` } : { name, ok: true, detail: 'in-memory' };
      }),
    };
  }

  /** Diff and apply for an owner, as the real driver does. */
  apply(owner: KernelOwner, desired: DesiredState, options: { dryRun?: boolean } = {}): Promise<ApplyResult> {
    return applyDesired(this, owner, desired, options);
  }

  async observe(owner: KernelOwner, hints: ObserveHints = {}): Promise<{ state: NormalState; processes: number }> {
    const sysctlKeys = hints.sysctlKeys ?? [];
    await Promise.resolve();
    const owned = (name: string) => ownsLink(owner, name);
    const [min, max] = owner.rulePriorities ?? [1, 0];
    const sysctls: Sysctl[] = [];
    for (const key of sysctlKeys) {
      const value = this.s.sysctls.get(key);
      if (value !== undefined) sysctls.push({ key, value });
    }
    const state: NormalState = structuredClone({
      links: this.s.links.filter((l) => owned(l.name)),
      addresses: this.s.addresses.filter((a) => owned(a.dev)),
      routes: this.s.routes.filter((r) => r.proto === owner.routeProtocol).map(({ proto: _proto, ...r }) => r),
      mplsRoutes: this.s.mplsRoutes.filter((r) => r.proto === owner.routeProtocol).map(({ proto: _proto, ...r }) => r),
      rules: this.s.rules.filter((r) => r.priority >= min && r.priority <= max),
      neighbours: this.s.neighbours.filter((n) => owned(n.dev)),
      fdb: this.s.fdb.filter((f) => owned(f.dev)),
      sysctls,
      wireguard: [...this.s.wireguard.values()].filter((d) => owned(d.name)),
      nftables: [...this.s.nftables.values()].filter((t) => t.name === nftPrefix(owner) || t.name.startsWith(`${nftPrefix(owner)}-`)),
    });
    return { state, processes: 0 };
  }

  async execute(owner: KernelOwner, changes: readonly Change[]): Promise<number> {
    await Promise.resolve();
    const applied: Change[] = [];
    for (const change of changes) {
      const injected = this.failures.get(change.id);
      if (injected !== undefined) this.failures.delete(change.id);
      const error = injected ?? this.one(owner, change);
      if (error !== undefined) throw new KernelApplyError(change, error, applied);
      applied.push(change);
      this.log.push(change);
    }
    return 0;
  }

  /** Whether `gateway` lies on a network directly connected (to `dev`, when given): an address's or a device route's. */
  private onLink(gateway: string, dev: string | undefined): boolean {
    const contains = (cidr: string) => {
      const n = parseNetwork(cidr);
      return n !== undefined && networkContains(n, gateway);
    };
    return (
      this.s.addresses.some((a) => (dev === undefined || a.dev === dev) && this.link(a.dev) !== undefined && contains(a.address)) ||
      this.s.routes.some((r) => r.via === undefined && r.dev !== undefined && (dev === undefined || r.dev === dev) && r.table === 254 && r.dst !== 'default' && contains(r.dst))
    );
  }

  private link(name: string | undefined): NLink | undefined {
    return name === undefined ? undefined : this.s.links.find((l) => l.name === name);
  }

  /** Applies one change; returns the kernel's error message, if any. */
  private one(owner: KernelOwner, change: Change): string | undefined {
    const s = this.s;
    const noDevice = (name: string) => `Cannot find device "${name}"`;
    switch (change.kind) {
      case 'link': {
        const l = change.object as NLink;
        const existing = this.link(l.name);
        if (change.op === 'delete') {
          if (!existing) return noDevice(l.name);
          const names = new Set([l.name, ...(l.kind === 'veth' && !l.peerNetns ? [l.peer] : [])]);
          s.links.splice(0, s.links.length, ...s.links.filter((x) => !names.has(x.name)).map((x) => (x.master && names.has(x.master) ? { ...x, master: undefined } : x)));
          this.dropOn(names);
          return undefined;
        }
        if (l.master !== undefined && !this.link(l.master)) return noDevice(l.master);
        if (change.op === 'add') {
          if (existing) return 'RTNETLINK answers: File exists';
          if (l.kind === 'vxlan' && l.dev !== undefined && !this.link(l.dev)) return noDevice(l.dev);
          s.links.push(structuredClone(l));
          if (l.kind === 'wireguard') s.wireguard.set(l.name, { name: l.name, privateKey: '', fwmark: 0, peers: [] });
          if (l.kind === 'veth' && !l.peerNetns) s.links.push({ kind: 'veth', name: l.peer, peer: l.name, up: l.up });
          return undefined;
        }
        if (!existing) return noDevice(l.name);
        // `set`: mtu and address only when given; master and up as given (no master means none).
        const updated = { ...existing, up: l.up, master: l.master, mtu: l.mtu ?? existing.mtu, address: l.address ?? existing.address } as NLink;
        s.links.splice(s.links.indexOf(existing), 1, updated);
        return undefined;
      }
      case 'address': {
        const a = change.object as Address;
        const i = s.addresses.findIndex((x) => x.dev === a.dev && x.address === a.address);
        if (change.op === 'delete') {
          if (i < 0) return 'RTNETLINK answers: Cannot assign requested address';
          s.addresses.splice(i, 1);
        } else {
          if (!this.link(a.dev)) return noDevice(a.dev);
          if (i < 0) s.addresses.push({ ...a });
        }
        return undefined;
      }
      case 'route': {
        const r = change.object as NRoute;
        const i = s.routes.findIndex((x) => routeKey(x) === routeKey(r) && x.family === r.family);
        if (change.op === 'delete') {
          if (i < 0) return 'RTNETLINK answers: No such process';
          s.routes.splice(i, 1);
          return undefined;
        }
        // `lo` is in every namespace, as in Linux (and as MPLS routes below take it): a route may go to it.
        if (r.dev !== undefined && r.dev !== 'lo' && !this.link(r.dev)) return noDevice(r.dev);
        // As Linux (fib_check_nh): a gateway must be on a connected network — an address's, or a route's with no
        // gateway of its own — of the route's device when it names one; `onlink` says it is, whatever the addresses.
        if (r.via !== undefined && r.onlink !== true && !this.onLink(r.via, r.dev)) return 'Error: Nexthop has invalid gateway.';
        // As Linux: a lightweight IP tunnel needs a tunnel device in metadata mode to carry it (else the packet is dropped,
        // which `ip route` does not refuse; refused here so that a test sees the mistake).
        if (r.ipEncap !== undefined) {
          const dev = r.dev === undefined ? undefined : this.link(r.dev);
          if (!dev || !(dev.kind === 'gre' || dev.kind === 'ip6gre') || (dev as { external?: boolean }).external !== true) return `Error: ${r.dev ?? '?'} is not a tunnel device in metadata mode (external)`;
        }
        const stored = { ...structuredClone(r), proto: owner.routeProtocol };
        if (i < 0) s.routes.push(stored);
        else s.routes.splice(i, 1, stored);
        return undefined;
      }
      case 'mpls': {
        const m = change.object as NMplsRoute;
        const i = s.mplsRoutes.findIndex((x) => x.label === m.label);
        if (change.op === 'delete') {
          if (i < 0) return 'RTNETLINK answers: No such process';
          s.mplsRoutes.splice(i, 1);
          return undefined;
        }
        if (m.dev !== undefined && !this.link(m.dev) && m.dev !== 'lo') return noDevice(m.dev);
        const stored = { ...structuredClone(m), proto: owner.routeProtocol };
        if (i < 0) s.mplsRoutes.push(stored);
        else s.mplsRoutes.splice(i, 1, stored);
        return undefined;
      }
      case 'rule': {
        const r = change.object as NRule;
        const i = s.rules.findIndex((x) => ruleKey(x) === ruleKey(r));
        if (change.op === 'delete') {
          if (i < 0) return 'RTNETLINK answers: No such file or directory';
          s.rules.splice(i, 1);
        } else s.rules.push({ ...r });
        return undefined;
      }
      case 'neighbour': {
        const n = change.object as Neighbour;
        const i = s.neighbours.findIndex((x) => x.dev === n.dev && x.address === n.address);
        if (change.op === 'delete') {
          if (i < 0) return 'RTNETLINK answers: No such file or directory';
          s.neighbours.splice(i, 1);
          return undefined;
        }
        if (!this.link(n.dev)) return noDevice(n.dev);
        if (i < 0) s.neighbours.push({ ...n });
        else s.neighbours.splice(i, 1, { ...n });
        return undefined;
      }
      case 'fdb': {
        const f = change.object as FdbEntry;
        const i = s.fdb.findIndex((x) => x.dev === f.dev && x.lladdr === f.lladdr && x.dst === f.dst);
        if (change.op === 'delete') {
          if (i < 0) return 'RTNETLINK answers: No such file or directory';
          s.fdb.splice(i, 1);
          return undefined;
        }
        if (!this.link(f.dev)) return noDevice(f.dev);
        if (change.op === 'replace') {
          // `bridge fdb replace`: the MAC's (first) destination becomes this one, as the kernel does.
          const j = s.fdb.findIndex((x) => x.dev === f.dev && x.lladdr === f.lladdr);
          if (j >= 0) s.fdb.splice(j, 1, { ...f });
          else s.fdb.push({ ...f });
          return undefined;
        }
        if (i < 0) s.fdb.push({ ...f });
        return undefined;
      }
      case 'wireguard': {
        const d = change.object as WireGuardDevice;
        const o = s.wireguard.get(d.name);
        if (!o) return `Unable to access interface: No such device`;
        const f = new Set(change.fields ?? []);
        s.wireguard.set(d.name, {
          ...o,
          ...(f.has('privateKey') ? { privateKey: d.privateKey } : {}),
          ...(f.has('listenPort') && d.listenPort !== undefined ? { listenPort: d.listenPort } : {}),
          ...(f.has('fwmark') ? { fwmark: d.fwmark ?? 0 } : {}),
        });
        return undefined;
      }
      case 'wgpeer': {
        const { device, ...peer } = change.object as WireGuardPeer & { device: string };
        const o = s.wireguard.get(device);
        if (!o) return `Unable to access interface: No such device`;
        const others = o.peers.filter((p) => p.publicKey !== peer.publicKey);
        const next: NPeer[] = change.op === 'delete' ? others : [...others, { ...(peer as NPeer) }];
        s.wireguard.set(device, { ...o, peers: next.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1)) });
        return undefined;
      }
      case 'nftables': {
        const t = change.object as NftTable;
        const key = `${t.family} ${t.name}`;
        if (change.op === 'set') {
          const d = change.object as NftElementChange;
          const o = s.nftables.get(key);
          if (!o) return `Error: No such file or directory; did you mean table ‘${t.name}’?`;
          // By key, as the kernel's sets are: a change of 500 elements in a 65,537-element map is 500 lookups.
          const keyOf = (e: string) => e.split(' : ')[0] as string;
          const sets = new Map(Object.entries(o.elements ?? {}).map(([k, v]) => [k, new Map(v.map((e) => [keyOf(e), e]))]));
          for (const [set, keys] of Object.entries(d.remove)) {
            const m = sets.get(set) ?? new Map<string, string>();
            for (const k of keys) if (!m.delete(k)) return `Error: Could not process rule: No such file or directory (delete element ${set} ${k})`;
            sets.set(set, m);
          }
          for (const [set, add] of Object.entries(d.add)) {
            const m = sets.get(set) ?? new Map<string, string>();
            for (const e of add) {
              if (m.has(keyOf(e))) return `Error: Could not process rule: File exists (add element ${set} ${e})`;
              m.set(keyOf(e), e);
            }
            sets.set(set, m);
          }
          const elements = Object.fromEntries([...sets].map(([k, m]) => [k, [...m.values()].sort()] as const));
          const counters = [...(o.counters ?? []).filter((c) => !d.removeCounters.includes(c)), ...d.addCounters].sort();
          const kept = Object.fromEntries(Object.entries(elements).filter(([, v]) => v.length > 0));
          s.nftables.set(key, { family: o.family, name: o.name, body: o.body, ...(Object.keys(kept).length > 0 ? { elements: kept } : {}), ...(counters.length > 0 ? { counters } : {}) });
          return undefined;
        }
        if (change.op === 'delete') {
          if (!s.nftables.delete(key)) return `Error: No such file or directory; did you mean table ‘${t.name}’?`;
        } else s.nftables.set(key, { ...t });
        return undefined;
      }
      case 'sysctl': {
        const x = change.object as Sysctl;
        if (!s.sysctls.has(x.key)) return `sysctl: cannot stat /proc/sys/${x.key.replaceAll('.', '/')}: No such file or directory`;
        s.sysctls.set(x.key, x.value);
        return undefined;
      }
    }
  }

  /** What the kernel removes with a link: its addresses, routes through it, neighbours and FDB entries. */
  private dropOn(names: ReadonlySet<string>): void {
    const s = this.s;
    const keep = <T>(list: T[], dev: (t: T) => string | undefined) => list.splice(0, list.length, ...list.filter((x) => !names.has(dev(x) ?? '')));
    keep(s.addresses, (a) => a.dev);
    keep(s.routes, (r) => r.dev);
    keep(s.mplsRoutes, (r) => r.dev);
    keep(s.neighbours, (n) => n.dev);
    keep(s.fdb, (f) => f.dev);
    for (const name of names) s.wireguard.delete(name);
  }
}
