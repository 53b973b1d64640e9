/**
 * Which peers each node probes. Up to `maxPeers` Ready peers, all of them. Above that, **rendezvous hashing with
 * bounded loads**, which every node computes alike from the same list of Ready nodes:
 *
 * - targets are taken in the order of their name's hash; each target t gets as probers the `r` nodes with the
 *   highest score(p, t) (never itself) that still have room, where `r = max(minProbers, floor(maxPeers / 2))` and a
 *   node has room while it probes fewer than `maxPeers` targets.
 *
 * Guarantee: every node is probed by exactly r ≥ minProbers others, and no node probes more than maxPeers. A node is
 * full at maxPeers ≥ 2r targets and all nodes together take n·r assignments, so at most n/2 nodes are ever full and a
 * target always finds r probers with room (there are more than maxPeers + 1 ≥ 2r + 1 nodes). The config refuses
 * maxPeers < 2 × minProbers; the tests check coverage and load for 10, 100 and 1000 nodes. Hashing keeps the choice
 * stable: a node that joins or leaves moves few assignments. Cost: n² scores and a sort per target (1000 nodes:
 * ~0.1 s), done again only when the Ready set changes.
 */

/** FNV-1a of a name. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Murmur3's finaliser over a pair: the score of prober `p` for target `t`. */
export function score(p: number, t: number): number {
  let h = (p ^ Math.imul(t, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** How many probers each target gets above maxPeers. */
export const redundancy = (maxPeers: number, minProbers: number): number => Math.max(minProbers, Math.floor(maxPeers / 2));

/** Every node's targets (sorted), for the Ready `members`. */
export function assignAll(members: readonly string[], options: { maxPeers: number; minProbers: number }): Map<string, string[]> {
  const all = [...new Set(members)].sort();
  const out = new Map(all.map((m) => [m, [] as string[]]));
  if (all.length - 1 <= options.maxPeers) {
    for (const m of all) out.set(m, all.filter((x) => x !== m));
    return out;
  }
  const hashes = all.map(nameHash);
  const r = redundancy(options.maxPeers, options.minProbers);
  const load = new Array<number>(all.length).fill(0);
  const order = all.map((_, i) => i).sort((a, b) => (hashes[a] as number) - (hashes[b] as number) || a - b);
  const candidates = all.map((_, i) => i);
  const scores = new Array<number>(all.length).fill(0);
  for (const t of order) {
    const ht = hashes[t] as number;
    for (let p = 0; p < all.length; p++) scores[p] = score(hashes[p] as number, ht);
    candidates.sort((a, b) => (scores[b] as number) - (scores[a] as number) || a - b);
    let picked = 0;
    for (const p of candidates) {
      if (picked === r) break;
      if (p === t || (load[p] as number) >= options.maxPeers) continue;
      out.get(all[p] as string)?.push(all[t] as string);
      load[p] = (load[p] as number) + 1;
      picked++;
    }
  }
  for (const list of out.values()) list.sort();
  return out;
}

/** The targets `self` probes among `members` (the Ready nodes, self included), sorted. */
export function selectTargets(self: string, members: readonly string[], options: { maxPeers: number; minProbers: number }): string[] {
  return assignAll([...members, self], options).get(self) ?? [];
}

/** The delay before the next probe of a peer: the interval moved by up to ± `jitter` of it. */
export function nextDelay(intervalMs: number, jitter: number, random: () => number = Math.random): number {
  return Math.round(intervalMs * (1 + jitter * (2 * random() - 1)));
}

/** The first probe of a peer: anywhere in the first interval, so a cluster that starts together spreads out. */
export function firstDelay(intervalMs: number, random: () => number = Math.random): number {
  return Math.round(intervalMs * random());
}
