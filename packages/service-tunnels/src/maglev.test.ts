import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { changedBuckets, DEFAULT_TABLE_SIZE, isPrime, maglevTable, shares } from './maglev.js';

const pods = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `198.19.${String((i + from) >> 8)}.${String((i + from) & 255)}`);
const digest = (t: Int32Array) => createHash('sha256').update(Buffer.from(t.buffer)).digest('hex');

describe('the Maglev table (M = 65537)', () => {
  it.each([3, 10, 100, 1000])('balance, %i endpoints: every share within 1 percent of 1/N (Maglev: ⌊M/N⌋ or ⌈M/N⌉)', (n) => {
    const t = maglevTable(pods(n), 'seed');
    expect(t.table.every((i) => i >= 0)).toBe(true);
    const ideal = DEFAULT_TABLE_SIZE / n;
    for (const [endpoint, count] of shares(t)) {
      expect(Math.abs(count - ideal) / ideal, endpoint).toBeLessThanOrEqual(0.01);
      expect(count === Math.floor(ideal) || count === Math.ceil(ideal), `${endpoint}: ${String(count)}`).toBe(true);
    }
  });

  it.each([3, 10, 100])('minimal disruption, %i endpoints: removing one moves about 1/N of the buckets, adding one about 1/(N+1)', (n) => {
    const before = maglevTable(pods(n), 'seed');
    // Removed: its own buckets must move; others move only as the permutations reshuffle (Maglev: a little more than 1/N).
    const removed = maglevTable(pods(n).slice(1), 'seed');
    const moved = changedBuckets(before, removed).length / DEFAULT_TABLE_SIZE;
    expect(moved).toBeGreaterThanOrEqual(1 / n - 0.001);
    expect(moved).toBeLessThanOrEqual(1 / n + 0.01); // measured: 3 → 33.36 %, 10 → 10.43 %, 100 → 1.59 %
    const added = maglevTable(pods(n + 1), 'seed');
    const movedAdd = changedBuckets(before, added).length / DEFAULT_TABLE_SIZE;
    expect(movedAdd).toBeGreaterThanOrEqual(1 / (n + 1) - 0.001);
    expect(movedAdd).toBeLessThanOrEqual(1 / (n + 1) + 0.01);
    // Most buckets that moved on an addition went to the new endpoint; what moved between old ones is small.
    const newcomer = added.endpoints.indexOf(pods(n + 1)[n] as string);
    const reshuffled = changedBuckets(before, added).filter((b) => added.table[b] !== newcomer).length / DEFAULT_TABLE_SIZE;
    expect(reshuffled).toBeLessThanOrEqual(0.01); // measured: 0.04–0.54 %
  });

  it('the same in another process for the same endpoints and seed, in any order; another seed, another table', () => {
    const list = pods(50);
    const here = maglevTable(list, 'svc-uid-1');
    expect(digest(maglevTable([...list].reverse(), 'svc-uid-1').table)).toBe(digest(here.table));
    const module = fileURLToPath(new URL('./maglev.ts', import.meta.url));
    const script = `import { maglevTable } from ${JSON.stringify(module)}; import { createHash } from 'node:crypto';
      const list = Array.from({ length: 50 }, (_, i) => '198.19.' + (i >> 8) + '.' + (i & 255)).reverse();
      const t = maglevTable(list, 'svc-uid-1');
      process.stdout.write(createHash('sha256').update(Buffer.from(t.table.buffer)).digest('hex'));`;
    const there = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(there).toBe(digest(here.table));
    const other = maglevTable(list, 'svc-uid-2');
    expect(changedBuckets(here, other).length).toBeGreaterThan(DEFAULT_TABLE_SIZE / 2);
  });

  it('an empty table has no endpoint in any bucket; a size that is not a prime is refused', () => {
    expect(maglevTable([], 's').table.every((i) => i === -1)).toBe(true);
    expect(() => maglevTable(pods(3), 's', 65536)).toThrow(/prime/);
    expect(isPrime(65537)).toBe(true);
    expect(isPrime(251)).toBe(true);
    expect(isPrime(1)).toBe(false);
  });
});
