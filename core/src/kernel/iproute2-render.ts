import { familyOf } from './ip.js';
import type { Address, Change, FdbEntry, KernelOwner, Neighbour } from './model.js';
import type { NLink, NMplsRoute, NRoute, NRule } from './normalize.js';

/** Renders one change as `ip -batch` lines (without the leading `ip`). */
export function ipLines(owner: KernelOwner, change: Change, options: { userspaceWireGuard?: boolean } = {}): string[][] {
  const o = change.object;
  switch (change.kind) {
    case 'link': {
      const l = o as NLink;
      // A link moved to another namespace is deleted and configured there; it is created here, then moved.
      const there = (args: string[]): string[] => (l.netns !== undefined ? [NETNS_MARK, l.netns, ...args] : args);
      if (change.op === 'delete') return [there(['link', 'del', 'dev', l.name])];
      const set = ['link', 'set', 'dev', l.name];
      const fields = change.op === 'set' ? (change.fields ?? []) : ['mtu', 'address', 'master', 'up'];
      if (fields.includes('mtu') && l.mtu !== undefined) set.push('mtu', String(l.mtu));
      if (fields.includes('address') && l.address !== undefined) set.push('address', l.address);
      if (fields.includes('master')) set.push(...(l.master !== undefined ? ['master', l.master] : change.op === 'set' ? ['nomaster'] : []));
      if (fields.includes('up')) set.push(l.up ? 'up' : 'down');
      // A userspace WireGuard link is created by wireguard-go before the batch runs.
      const lines = change.op === 'add' && !(l.kind === 'wireguard' && options.userspaceWireGuard) ? [linkAdd(l)] : [];
      if (change.op === 'add' && l.netns !== undefined) lines.push(['link', 'set', 'dev', l.name, 'netns', l.netns]);
      if (set.length > 4) lines.push(there(set));
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
      if (r.ipEncap) line.push('encap', r.ipEncap.dst.includes(':') ? 'ip6' : 'ip', 'dst', r.ipEncap.dst, ...(r.ipEncap.ttl !== undefined ? ['ttl', String(r.ipEncap.ttl)] : []));
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
      return [['fdb', change.op === 'delete' ? 'del' : change.op === 'replace' ? 'replace' : 'append', f.lladdr, 'dev', f.dev, 'dst', f.dst]];
    }
    case 'mpls': {
      const m = o as NMplsRoute;
      if (change.op === 'delete') return [['route', 'del', String(m.label), 'proto', String(owner.routeProtocol)]];
      const line = ['route', 'replace', String(m.label)];
      if (m.as.length > 0) line.push('as', m.as.join('/'));
      if (m.via !== undefined) line.push('via', familyOf(m.via) === 6 ? 'inet6' : 'inet', m.via);
      if (m.dev !== undefined) line.push('dev', m.dev);
      line.push('proto', String(owner.routeProtocol));
      return [line];
    }
    case 'sysctl':
    case 'wireguard':
    case 'wgpeer':
    case 'nftables':
      return [];
  }
}

/** Marks a line that runs in another namespace: `[NETNS_MARK, ns, ...args]`. */
export const NETNS_MARK = '\0netns';

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
      if (l.external === true) {
        line.push('external');
        if (l.ttl !== undefined) line.push('ttl', String(l.ttl));
        break;
      }
      line.push('remote', l.remote ?? '');
      if (l.local !== undefined) line.push('local', l.local);
      if (l.key !== undefined) line.push('key', String(l.key));
      if (l.ttl !== undefined) line.push('ttl', String(l.ttl));
      break;
    case 'ipip':
      line.push('remote', l.remote);
      if (l.local !== undefined) line.push('local', l.local);
      if (l.ttl !== undefined) line.push('ttl', String(l.ttl));
      break;
    default:
      break;
  }
  return line;
}

export type Tool = 'ip' | 'ip6' | 'mpls' | 'bridge' | 'wg' | 'nft' | 'sysctl';

/**
 * Which tool runs a change: `ip`; `ip -6` for IPv6 rules (`ip rule` assumes IPv4 unless told, even for an IPv6
 * `from`); `bridge` for FDB entries; a sysctl write.
 */
function toolOf(change: Change): Tool {
  if (change.kind === 'fdb') return 'bridge';
  if (change.kind === 'sysctl') return 'sysctl';
  if (change.kind === 'wireguard' || change.kind === 'wgpeer') return 'wg';
  if (change.kind === 'nftables') return 'nft';
  if (change.kind === 'mpls') return 'mpls';
  if (change.kind === 'rule' && (change.object as NRule).family === 6) return 'ip6';
  return 'ip';
}

/**
 * Groups changes into batches, one per tool and phase, deletions before additions; within a batch the diff's order
 * stands. Across tools:
 * - deletions: `ip` (rules, routes, neighbours, addresses, links) before FDB entries, so a route goes before what it
 *   points at;
 * - additions: links, addresses and neighbours (`ip`), then FDB entries (`bridge`), then routes and rules (`ip`
 *   again, only when there are FDB entries to write between them): a route is never in the kernel before the
 *   neighbour and FDB entries its next hop needs. Sysctls go before MPLS routes: a label needs
 *   `net.mpls.platform_labels` above it and input on its link.
 */
export function batches(changes: readonly Change[]): { tool: Tool; deleting: boolean; changes: Change[] }[] {
  const late = (c: Change) => c.kind === 'route' || c.kind === 'rule';
  const fdbAdds = changes.some((c) => c.op !== 'delete' && c.kind === 'fdb');
  type Phase = 'early' | 'late' | 'all';
  const order: [boolean, Tool, Phase][] = [
    [true, 'nft', 'all'],
    [true, 'wg', 'all'],
    [true, 'mpls', 'all'],
    [true, 'ip6', 'all'],
    [true, 'ip', 'all'],
    [true, 'bridge', 'all'],
    [false, 'ip', fdbAdds ? 'early' : 'all'],
    [false, 'bridge', 'all'],
    ...(fdbAdds ? [[false, 'ip', 'late'] as [boolean, Tool, Phase]] : []),
    [false, 'ip6', 'all'],
    [false, 'sysctl', 'all'],
    [false, 'mpls', 'all'],
    [false, 'wg', 'all'],
    [false, 'nft', 'all'],
  ];
  const inPhase = (c: Change, phase: Phase) => phase === 'all' || late(c) === (phase === 'late');
  return order
    .map(([deleting, tool, phase]) => ({ tool, deleting, changes: changes.filter((c) => (c.op === 'delete') === deleting && toolOf(c) === tool && inPhase(c, phase)) }))
    .filter((b) => b.changes.length > 0);
}
