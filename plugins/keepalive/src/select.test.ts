import { describe, expect, it } from 'vitest';
import { assignAll, firstDelay, nextDelay, redundancy, score, selectTargets } from './select.js';

const names = (n: number) => Array.from({ length: n }, (_, i) => `node-${String(i).padStart(4, '0')}`);

/** Every node's choice, and from it how many probe each node and how many each probes. */
function assignments(n: number, maxPeers: number, minProbers: number) {
  const members = names(n);
  const probedBy = new Map(members.map((m) => [m, 0]));
  const loads: number[] = [];
  const all = assignAll(members, { maxPeers, minProbers });
  for (const self of members) {
    const targets = all.get(self) ?? [];
    expect(targets).not.toContain(self);
    loads.push(targets.length);
    for (const t of targets) probedBy.set(t, (probedBy.get(t) ?? 0) + 1);
  }
  return { minProbed: Math.min(...probedBy.values()), maxLoad: Math.max(...loads), meanLoad: loads.reduce((a, b) => a + b, 0) / n };
}

describe('peer selection', () => {
  it('up to maxPeers peers: every node probes every other', () => {
    expect(selectTargets('node-0003', names(10), { maxPeers: 100, minProbers: 3 })).toEqual(names(10).filter((x) => x !== 'node-0003'));
    expect(assignments(10, 9, 3)).toEqual({ minProbed: 9, maxLoad: 9, meanLoad: 9 });
  });

  it.each([
    [10, 4, 2],
    [100, 10, 3],
    [100, 20, 3],
    [1000, 10, 3],
    [1000, 100, 3],
    [1000, 6, 3],
  ])('%i nodes, maxPeers %i, minProbers %i: every node is probed by at least minProbers, nobody probes more than maxPeers', (n, maxPeers, minProbers) => {
    const a = assignments(n, maxPeers, minProbers);
    // Exactly r probers for every node (r >= minProbers), and an average load of r.
    expect(a.minProbed).toBe(redundancy(maxPeers, minProbers));
    expect(a.minProbed).toBeGreaterThanOrEqual(minProbers);
    expect(a.maxLoad).toBeLessThanOrEqual(maxPeers);
    expect(a.meanLoad).toBe(redundancy(maxPeers, minProbers));
  });

  it('all nodes compute alike: the same members in any order give the same choice', () => {
    const members = names(300);
    const a = selectTargets('node-0042', members, { maxPeers: 10, minProbers: 3 });
    const b = selectTargets('node-0042', [...members].reverse(), { maxPeers: 10, minProbers: 3 });
    expect(b).toEqual(a);
    // A node joining moves few assignments (rendezvous hashing): most of the old choice stays.
    const c = selectTargets('node-0042', [...members, 'node-9999'], { maxPeers: 10, minProbers: 3 });
    expect(c.filter((x) => a.includes(x)).length).toBeGreaterThanOrEqual(a.length - 2);
    // What one node computes for itself is its part of what every node computes.
    expect(assignAll(members, { maxPeers: 10, minProbers: 3 }).get('node-0042')).toEqual(a);
  });

  it('jitter stays within ± its fraction of the interval; the first probe falls in the first interval', () => {
    const lo = nextDelay(10_000, 0.1, () => 0);
    const hi = nextDelay(10_000, 0.1, () => 0.999999);
    expect([lo, hi]).toEqual([9000, 11000]);
    for (let i = 0; i < 1000; i++) {
      const d = nextDelay(10_000, 0.2);
      expect(d).toBeGreaterThanOrEqual(8000);
      expect(d).toBeLessThanOrEqual(12_000);
      const f = firstDelay(10_000);
      expect(f).toBeGreaterThanOrEqual(0);
      expect(f).toBeLessThanOrEqual(10_000);
    }
    expect(nextDelay(10_000, 0, () => 0.3)).toBe(10_000);
  });
});

/** The assignment as select.ts describes it, written the plain way (a full sort of every prober per target). */
function reference(members: readonly string[], options: { maxPeers: number; minProbers: number }): Map<string, string[]> {
  const all = [...new Set(members)].sort();
  const out = new Map(all.map((m) => [m, [] as string[]]));
  if (all.length - 1 <= options.maxPeers) {
    for (const m of all) out.set(m, all.filter((x) => x !== m));
    return out;
  }
  const fnv = (name: string) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
    return h >>> 0;
  };
  const hashes = all.map(fnv);
  const r = redundancy(options.maxPeers, options.minProbers);
  const load = all.map(() => 0);
  const order = all.map((_, i) => i).sort((a, b) => (hashes[a] as number) - (hashes[b] as number) || a - b);
  for (const t of order) {
    const candidates = all.map((_, i) => i).sort((a, b) => score(hashes[b] as number, hashes[t] as number) - score(hashes[a] as number, hashes[t] as number) || a - b);
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

describe('assignAll, fast', () => {
  it.each([
    [12, 10, 3],
    [150, 10, 3],
    [400, 100, 3],
    [200, 2, 1],
  ])('%i nodes, maxPeers %i, minProbers %i: the same assignment as the plain algorithm', (n, maxPeers, minProbers) => {
    expect(assignAll(names(n), { maxPeers, minProbers })).toEqual(reference(names(n), { maxPeers, minProbers }));
  });

  it("the same also when a target's short list is used up by full probers (the whole order is sorted then)", () => {
    for (const shortList of [1, 2, 3]) expect(assignAll(names(150), { maxPeers: 4, minProbers: 2 }, shortList)).toEqual(reference(names(150), { maxPeers: 4, minProbers: 2 }));
  });
});
