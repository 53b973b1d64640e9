import { createHash } from 'node:crypto';

/** The default table size: a prime, ≫ the endpoints of any one VIP (Maglev keeps reassignment ≤ 1 % at M > 100 N). */
export const DEFAULT_TABLE_SIZE = 65_537;

/** The largest table weft builds: a prime that keeps a table in 256 KiB (Int32 entries). */
export const MAX_TABLE_SIZE = 65_537;

/** Whether `n` is a prime (trial division: table sizes are small). */
export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Two independent 32-bit hashes of an endpoint under a seed: the offset and the skip of its permutation. */
function hashes(seed: string, endpoint: string): [number, number] {
  const h = createHash('sha256').update(`weft-maglev\0${seed}\0${endpoint}`).digest();
  return [h.readUInt32BE(0), h.readUInt32BE(4)];
}

/** A Maglev lookup table: `table[bucket]` is the index of an endpoint in `endpoints`, or -1 when there is none. */
export interface MaglevTable {
  /** The endpoints the table was built from, sorted (the order every node builds it in). */
  readonly endpoints: readonly string[];
  /** M entries, each an index into `endpoints`. */
  readonly table: Int32Array;
  readonly seed: string;
}

/**
 * Builds a Maglev lookup table (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI
 * 2016, section 3.4): each endpoint gets a permutation of the M buckets from two hashes of its name under the seed
 * (offset and skip, M prime), and the endpoints take turns claiming their next unclaimed bucket until every bucket is
 * taken. Every endpoint ends with ⌊M/N⌋ or ⌈M/N⌉ buckets, and adding or removing one endpoint moves about 1/N of them.
 *
 * The endpoints are sorted first (and duplicates dropped), so that every node that builds a table from the same set
 * and seed gets the same table, whatever order it learnt the endpoints in.
 */
export function maglevTable(endpoints: Iterable<string>, seed: string, size = DEFAULT_TABLE_SIZE): MaglevTable {
  if (!isPrime(size) || size > MAX_TABLE_SIZE) throw new RangeError(`Maglev table size must be a prime ≤ ${String(MAX_TABLE_SIZE)}, got ${String(size)}`);
  const sorted = [...new Set(endpoints)].sort();
  const n = sorted.length;
  const table = new Int32Array(size).fill(-1);
  if (n === 0) return { endpoints: sorted, table, seed };
  const offset = new Uint32Array(n);
  const skip = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const [a, b] = hashes(seed, sorted[i] as string);
    offset[i] = a % size;
    skip[i] = (b % (size - 1)) + 1;
  }
  // next[i]: how far along its permutation endpoint i is; its j-th choice is (offset + j * skip) mod M, kept as a
  // running value so that no multiplication can overflow.
  const choice = Float64Array.from(offset);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      let c = choice[i] as number;
      while ((table[c] as number) >= 0) {
        c += skip[i] as number;
        if (c >= size) c -= size;
      }
      table[c] = i;
      c += skip[i] as number;
      if (c >= size) c -= size;
      choice[i] = c;
      if (++filled === size) return { endpoints: sorted, table, seed };
    }
  }
}

/** How many buckets each endpoint holds, by endpoint. */
export function shares(t: MaglevTable): Map<string, number> {
  const counts = new Array<number>(t.endpoints.length).fill(0);
  for (const i of t.table) if (i >= 0) counts[i] = (counts[i] as number) + 1;
  return new Map(t.endpoints.map((e, i) => [e, counts[i] as number]));
}

/** The buckets whose endpoint differs between two tables of one size (what a change of endpoints moves). */
export function changedBuckets(before: MaglevTable, after: MaglevTable): number[] {
  if (before.table.length !== after.table.length) throw new RangeError('tables of different sizes');
  const out: number[] = [];
  for (let b = 0; b < after.table.length; b++) {
    const x = before.table[b] as number;
    const y = after.table[b] as number;
    if ((x < 0 ? undefined : before.endpoints[x]) !== (y < 0 ? undefined : after.endpoints[y])) out.push(b);
  }
  return out;
}

/**
 * The seed every ingress node uses for a VIP's table: the configured one, else derived from the Service's UID (the
 * same on every node, and a new one when the Service is re-created). Never per node: a per-node random seed (the
 * kube-service-tunnel prototype's) sends a flow that changes ingress node to another endpoint.
 */
export function tableSeed(configured: string | undefined, service: { readonly namespace: string; readonly name: string; readonly uid?: string }): string {
  return configured ?? `${service.namespace}/${service.name}/${service.uid ?? ''}`;
}
