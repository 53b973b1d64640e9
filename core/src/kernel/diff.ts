import type { Address, Change, FdbEntry, Neighbour, NftElementChange, NftTable, Sysctl } from './model.js';
import { type NLink, type NMplsRoute, type NormalState, type NPeer, type NRoute, type NWireGuard, routeKey, ruleKey } from './normalize.js';

/** Link attributes that only recreating the link can change, per kind. */
const IMMUTABLE: Record<string, readonly string[]> = {
  vxlan: ['vni', 'port', 'local', 'dev', 'learning'],
  gre: ['remote', 'local', 'key', 'ttl', 'external'],
  ip6gre: ['remote', 'local', 'key', 'ttl', 'external'],
  ipip: ['remote', 'local', 'ttl'],
  veth: ['peer', 'peerNetns'],
};

/** The mutable attributes of `desired` that differ from `observed` (`ip link set`). */
export function linkFieldsToSet(observed: NLink, desired: NLink): string[] {
  const fields: string[] = [];
  if (desired.mtu !== undefined && desired.mtu !== observed.mtu) fields.push('mtu');
  if (desired.address !== undefined && desired.address !== observed.address) fields.push('address');
  if ((desired.master ?? null) !== (observed.master ?? null)) fields.push('master');
  if (desired.up !== observed.up) fields.push('up');
  return fields;
}

/** Whether the link must be deleted and created again to match. */
export function linkNeedsRecreate(observed: NLink, desired: NLink): boolean {
  if (observed.kind !== desired.kind) return true;
  if ((observed.netns ?? null) !== (desired.netns ?? null)) return true;
  const o = observed as unknown as Record<string, unknown>;
  const d = desired as unknown as Record<string, unknown>;
  // Unset desired attributes are the kernel's to choose (ip6gre's default hop limit reads back as 64); a veth
  // peer in another namespace cannot be read back at all.
  const fields = (IMMUTABLE[desired.kind] ?? []).filter((f) => d[f] !== undefined && !(desired.kind === 'veth' && o[f] === undefined));
  return fields.some((f) => JSON.stringify(o[f] ?? null) !== JSON.stringify(d[f] ?? null));
}

/** Whether the observed route `a` is the desired `b`; a desired route without `dev` takes the one the kernel chose. */
function sameRoute(a: NRoute, b: NRoute): boolean {
  return (
    (b.dev === undefined || a.dev === b.dev) &&
    a.via === b.via &&
    a.src === b.src &&
    a.onlink === b.onlink &&
    a.mpls.length === b.mpls.length &&
    a.mpls.every((l, i) => l === b.mpls[i]) &&
    a.ipEncap?.dst === b.ipEncap?.dst &&
    (b.ipEncap?.ttl === undefined || a.ipEncap?.ttl === b.ipEncap.ttl)
  );
}

/** The all-zero MAC: an FDB entry for it floods (broadcast, multicast, unknown unicast) to its destinations. */
const ZERO_MAC = '00:00:00:00:00:00';

const byKey = <T>(items: readonly T[], key: (t: T) => string) => new Map(items.map((i) => [key(i), i]));

/**
 * The ordered changes that turn `observed` (the owner's objects as the kernel has them, plus the current values of
 * the desired sysctls) into `desired`. Pure. Deletions come first, in reverse dependency order (rules, routes,
 * neighbours, FDB, addresses, links); then additions and in-place changes in dependency order (links, addresses,
 * neighbours, FDB, routes, rules, sysctls): a route is never written before the neighbour and FDB entries it
 * needs. Replace is preferred over delete + add wherever the kernel allows it.
 */
export function diffState(observed: NormalState, desired: NormalState): Change[] {
  const deletes: Change[] = [];
  const adds: Change[] = [];

  // Links: recreate when an immutable attribute differs, else `set` what differs.
  const observedLinks = byKey(observed.links, (l) => l.name);
  const desiredLinks = byKey(desired.links, (l) => l.name);
  // The local end of a veth pair is created with it and belongs to it.
  const peers = new Set(desired.links.flatMap((l) => (l.kind === 'veth' && l.peerNetns === undefined ? [l.peer] : [])));
  const recreated = new Set<string>();
  const linkDeletes: Change[] = [];
  for (const [name, o] of observedLinks) {
    if (peers.has(name) && !desiredLinks.has(name)) continue;
    const d = desiredLinks.get(name);
    if (!d || linkNeedsRecreate(o, d)) {
      linkDeletes.push({ op: 'delete', kind: 'link', id: `link ${name}`, object: o });
      if (d) recreated.add(name);
    }
  }
  // Deleting one end of a veth pair deletes the other: keep one delete per pair.
  const removed = new Set<string>();
  const pairDeletes = linkDeletes.filter((c) => {
    const l = c.object as NLink;
    if (removed.has(l.name)) return false;
    if (l.kind === 'veth' && l.peer !== undefined) removed.add(l.peer);
    return true;
  });
  // Bridges last among additions' prerequisites: a master must exist before its members are enslaved.
  const orderedLinks = [...desired.links].sort((a, b) => Number(b.kind === 'bridge') - Number(a.kind === 'bridge'));
  for (const d of orderedLinks) {
    const o = observedLinks.get(d.name);
    if (!o || recreated.has(d.name)) adds.push({ op: 'add', kind: 'link', id: `link ${d.name}`, object: d });
    else {
      const fields = linkFieldsToSet(o, d);
      if (fields.length > 0) adds.push({ op: 'set', kind: 'link', id: `link ${d.name}`, object: d, fields });
    }
  }
  const gone = (dev: string) => !desiredLinks.has(dev) || recreated.has(dev);

  // Addresses on owned links; those on links being deleted go with them.
  const addrKey = (a: Address) => `${a.dev} ${a.address}`;
  const observedAddrs = byKey(observed.addresses, addrKey);
  const desiredAddrs = byKey(desired.addresses, addrKey);
  const addrDeletes: Change[] = [];
  for (const [k, o] of observedAddrs) {
    if (!desiredAddrs.has(k) && !gone(o.dev)) addrDeletes.push({ op: 'delete', kind: 'address', id: `address ${k}`, object: o });
  }
  for (const [k, d] of desiredAddrs) {
    if (!observedAddrs.has(k) || gone(d.dev)) adds.push({ op: 'add', kind: 'address', id: `address ${k}`, object: d });
  }

  // Neighbours and FDB entries before the routes that use them: a route never points at a next hop the kernel
  // cannot resolve (a packet would start a resolution that cannot succeed), nor at a MAC the VXLAN device cannot send to.
  const neighKey = (n: Neighbour) => `${n.dev} ${n.address}`;
  const observedNeigh = byKey(observed.neighbours, neighKey);
  const desiredNeigh = byKey(desired.neighbours, neighKey);
  const neighDeletes: Change[] = [];
  for (const [k, o] of observedNeigh) if (!desiredNeigh.has(k) && !gone(o.dev)) neighDeletes.push({ op: 'delete', kind: 'neighbour', id: `neighbour ${k}`, object: o });
  for (const [k, d] of desiredNeigh) {
    const o = observedNeigh.get(k);
    if (!o || o.lladdr !== d.lladdr || gone(d.dev)) adds.push({ op: o && !gone(d.dev) ? 'replace' : 'add', kind: 'neighbour', id: `neighbour ${k}`, object: d });
  }

  const fdbKey = (f: FdbEntry) => `${f.dev} ${f.lladdr} dst ${f.dst}`;
  const observedFdb = byKey(observed.fdb, fdbKey);
  const desiredFdb = byKey(desired.fdb, fdbKey);
  // A MAC with one destination on both sides (an overlay peer's VTEP) that moved is replaced in place (`bridge fdb
  // replace`): never a moment without it. The all-zero MAC (head-end replication) keeps a list: append and delete.
  const perMac = (entries: Iterable<FdbEntry>) => {
    const count = new Map<string, number>();
    for (const f of entries) count.set(`${f.dev} ${f.lladdr}`, (count.get(`${f.dev} ${f.lladdr}`) ?? 0) + 1);
    return count;
  };
  const observedPerMac = perMac(observedFdb.values());
  const desiredPerMac = perMac(desiredFdb.values());
  const moves = (f: FdbEntry) => f.lladdr !== ZERO_MAC && !gone(f.dev) && observedPerMac.get(`${f.dev} ${f.lladdr}`) === 1 && desiredPerMac.get(`${f.dev} ${f.lladdr}`) === 1;
  const fdbDeletes: Change[] = [];
  for (const [k, o] of observedFdb) if (!desiredFdb.has(k) && !gone(o.dev) && !moves(o)) fdbDeletes.push({ op: 'delete', kind: 'fdb', id: `fdb ${k}`, object: o });
  for (const [k, d] of desiredFdb) {
    if (!observedFdb.has(k) || gone(d.dev)) adds.push({ op: moves(d) ? 'replace' : 'add', kind: 'fdb', id: `fdb ${k}`, object: d });
  }

  const observedRoutes = byKey(observed.routes, routeKey);
  const desiredRoutes = byKey(desired.routes, routeKey);
  const routeDeletes: Change[] = [];
  for (const [k, o] of observedRoutes) if (!desiredRoutes.has(k)) routeDeletes.push({ op: 'delete', kind: 'route', id: `route ${k}`, object: o });
  for (const [k, d] of desiredRoutes) {
    const o = observedRoutes.get(k);
    // A route through a recreated link vanished with it; `replace` puts it back either way.
    if (!o || !sameRoute(o, d) || (d.dev !== undefined && recreated.has(d.dev))) adds.push({ op: o ? 'replace' : 'add', kind: 'route', id: `route ${k}`, object: d });
  }

  // MPLS routes: one per label, replaced in place.
  // A swap without a device: the kernel picks it by the next hop (and lists it), and any it picked is the desired one.
  const sameMpls = (observed: NMplsRoute, desired: NMplsRoute) => (desired.dev === undefined || observed.dev === desired.dev) && observed.via === desired.via && observed.as.join('/') === desired.as.join('/');
  const observedMpls = byKey(observed.mplsRoutes, (m) => String(m.label));
  const desiredMpls = byKey(desired.mplsRoutes, (m) => String(m.label));
  for (const [k, o] of observedMpls) if (!desiredMpls.has(k)) routeDeletes.push({ op: 'delete', kind: 'mpls', id: `mpls route ${k}`, object: o });
  for (const [k, d] of desiredMpls) {
    const o = observedMpls.get(k);
    if (!o || !sameMpls(o, d) || (d.dev !== undefined && recreated.has(d.dev))) adds.push({ op: o ? 'replace' : 'add', kind: 'mpls', id: `mpls route ${k}`, object: d });
  }

  const observedRules = byKey(observed.rules, ruleKey);
  const desiredRules = byKey(desired.rules, ruleKey);
  const ruleDeletes: Change[] = [];
  for (const [k, o] of observedRules) if (!desiredRules.has(k)) ruleDeletes.push({ op: 'delete', kind: 'rule', id: `rule ${k}`, object: o });
  for (const [k, d] of desiredRules) if (!observedRules.has(k)) adds.push({ op: 'add', kind: 'rule', id: `rule ${k}`, object: d });

  // WireGuard: device settings by `set`, peers one by one; unchanged peers are never touched.
  const wgDeletes: Change[] = [];
  const observedWg = byKey(observed.wireguard, (d) => d.name);
  for (const d of desired.wireguard) {
    const o = gone(d.name) ? undefined : observedWg.get(d.name);
    const fields = deviceFieldsToSet(o, d);
    if (fields.length > 0) adds.push({ op: 'set', kind: 'wireguard', id: `wireguard ${d.name}`, object: d, fields });
    const observedPeers = byKey(o?.peers ?? [], (p) => p.publicKey);
    const desiredPeers = byKey(d.peers, (p) => p.publicKey);
    for (const [key, op] of observedPeers) {
      if (!desiredPeers.has(key)) wgDeletes.push({ op: 'delete', kind: 'wgpeer', id: `wgpeer ${d.name} ${key}`, object: { ...op, device: d.name } });
    }
    for (const [key, dp] of desiredPeers) {
      const op = observedPeers.get(key);
      if (!op) adds.push({ op: 'add', kind: 'wgpeer', id: `wgpeer ${d.name} ${key}`, object: { ...dp, device: d.name } });
      else {
        const changed = peerFieldsToSet(op, dp);
        if (changed.length > 0) adds.push({ op: 'replace', kind: 'wgpeer', id: `wgpeer ${d.name} ${key}`, object: { ...dp, device: d.name }, fields: changed });
      }
    }
  }

  // nftables: a table whose body differs is replaced whole (atomically); one whose body stays gets only the elements
  // and counters that differ; one no longer wanted is deleted.
  const nftKey = (t: { family: string; name: string }) => `${t.family} ${t.name}`;
  const observedNft = byKey(observed.nftables, nftKey);
  const desiredNft = byKey(desired.nftables, nftKey);
  const nftDeletes: Change[] = [];
  for (const [k, o] of observedNft) if (!desiredNft.has(k)) nftDeletes.push({ op: 'delete', kind: 'nftables', id: `nftables ${k}`, object: o });
  for (const [k, d] of desiredNft) {
    const o = observedNft.get(k);
    if (!o || o.body !== d.body) adds.push({ op: o ? 'replace' : 'add', kind: 'nftables', id: `nftables ${k}`, object: d });
    else {
      const delta = nftElementDelta(o, d);
      if (delta) adds.push({ op: 'set', kind: 'nftables', id: `nftables ${k}`, object: delta.change, fields: delta.fields });
    }
  }

  const observedSysctls = byKey(observed.sysctls, (s: Sysctl) => s.key);
  for (const d of desired.sysctls) {
    if (observedSysctls.get(d.key)?.value !== d.value) adds.push({ op: 'set', kind: 'sysctl', id: `sysctl ${d.key}`, object: d });
  }

  deletes.push(...nftDeletes, ...wgDeletes, ...ruleDeletes, ...routeDeletes, ...neighDeletes, ...fdbDeletes, ...addrDeletes, ...pairDeletes);
  return [...deletes, ...adds];
}

/**
 * The elements and counters that differ between two versions of a table with the same body, and a summary per set
 * (`b0 ±456`: what `weft plan` prints instead of the elements); undefined when none do.
 */
export function nftElementDelta(observed: NftTable, desired: NftTable): { change: NftElementChange; fields: string[] } | undefined {
  const add: Record<string, string[]> = {};
  const remove: Record<string, string[]> = {};
  const fields: string[] = [];
  const sets = new Set([...Object.keys(observed.elements ?? {}), ...Object.keys(desired.elements ?? {})]);
  for (const set of [...sets].sort()) {
    const had = new Map((observed.elements?.[set] ?? []).map((e) => [e.split(' : ')[0] as string, e]));
    const want = new Map((desired.elements?.[set] ?? []).map((e) => [e.split(' : ')[0] as string, e]));
    const toAdd: string[] = [];
    const toRemove: string[] = [];
    for (const [key, e] of want) {
      const h = had.get(key);
      if (h === e) continue;
      if (h !== undefined) toRemove.push(key);
      toAdd.push(e);
    }
    for (const key of had.keys()) if (!want.has(key)) toRemove.push(key);
    if (toAdd.length > 0) add[set] = toAdd;
    if (toRemove.length > 0) remove[set] = toRemove;
    if (toAdd.length > 0 || toRemove.length > 0) fields.push(`${set} +${String(toAdd.length)} -${String(toRemove.length)}`);
  }
  const hadCounters = new Set(observed.counters ?? []);
  const wantCounters = new Set(desired.counters ?? []);
  const addCounters = [...wantCounters].filter((n) => !hadCounters.has(n));
  const removeCounters = [...hadCounters].filter((n) => !wantCounters.has(n));
  if (addCounters.length > 0 || removeCounters.length > 0) fields.push(`counters +${String(addCounters.length)} -${String(removeCounters.length)}`);
  if (fields.length === 0) return undefined;
  return { change: { family: desired.family, name: desired.name, add, remove, addCounters, removeCounters }, fields };
}

/** Device settings that differ (`listenPort` only when desired; a new device gets all of them). */
function deviceFieldsToSet(observed: NWireGuard | undefined, desired: NWireGuard): string[] {
  if (!observed) return ['privateKey', ...(desired.listenPort !== undefined ? ['listenPort'] : []), ...(desired.fwmark !== 0 ? ['fwmark'] : [])];
  const fields: string[] = [];
  if (observed.privateKey !== desired.privateKey) fields.push('privateKey');
  if (desired.listenPort !== undefined && observed.listenPort !== desired.listenPort) fields.push('listenPort');
  if (observed.fwmark !== desired.fwmark) fields.push('fwmark');
  return fields;
}

/** Peer attributes that differ (`endpoint` only when desired: a roaming peer's observed endpoint is its own). */
function peerFieldsToSet(observed: NPeer, desired: NPeer): string[] {
  const fields: string[] = [];
  if ((observed.presharedKey ?? '') !== (desired.presharedKey ?? '')) fields.push('presharedKey');
  if (desired.endpoint !== undefined && observed.endpoint !== desired.endpoint) fields.push('endpoint');
  if (observed.allowedIPs.join(',') !== desired.allowedIPs.join(',')) fields.push('allowedIPs');
  if (observed.persistentKeepalive !== desired.persistentKeepalive) fields.push('persistentKeepalive');
  return fields;
}
