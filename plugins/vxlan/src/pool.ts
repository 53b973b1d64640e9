import { createHash } from 'node:crypto';
import { addressAt, type Network, networkSize } from '@weft/core';

/** A member as the allocation sees it: its name, and when the cluster first knew it (the older keeps a contested slot). */
export interface PoolMember {
  readonly name: string;
  readonly createdAt: number;
}

const hash = (text: string): bigint => BigInt(`0x${createHash('sha256').update(text).digest('hex').slice(0, 30)}`);

/**
 * Each member's address in a segment's pool, computed alike on every node from the members alone (no coordination,
 * nothing a node publishes): a member's first choice is a hash of its name; where two want one address, the node the
 * cluster knew first takes it and the other probes on (double hashing, so two nodes never follow each other); when
 * both are equally old neither takes it, so that no name wins by sorting first. A member keeps its address while
 * the members change, unless an older node is added that wants it. A pool smaller than its members leaves the last
 * ones without an address (absent from the map).
 *
 * IPv4 pools skip the network and broadcast addresses; IPv6 pools skip the subnet-router anycast address.
 */
export function allocate(pool: Network, members: readonly PoolMember[], salt: string): Map<string, string> {
  const size = networkSize(pool);
  const first = 1n;
  const usable = pool.family === 4 ? size - 2n : size - 1n;
  const result = new Map<string, string>();
  if (usable <= 0n) return result;
  const taken = new Set<bigint>();
  const probe = new Map(
    members.map((m) => {
      const h = hash(`${salt}\0${m.name}`);
      return [m.name, { start: h % usable, step: usable > 1n ? 1n + ((h >> 64n) % (usable - 1n)) : 1n, createdAt: m.createdAt }] as const;
    }),
  );
  let waiting = [...probe.keys()];
  // Bounded: every round either places someone or moves every waiting member on; a pool's worth of rounds at most.
  const rounds = Math.min(Number(usable < 4096n ? usable : 4096n), members.length * 8 + 16);
  for (let round = 0n; waiting.length > 0 && round < BigInt(rounds); round++) {
    const wants = new Map<bigint, string[]>();
    for (const name of waiting) {
      const p = probe.get(name) as { start: bigint; step: bigint };
      const slot = (p.start + round * p.step) % usable;
      if (taken.has(slot)) continue;
      wants.set(slot, [...(wants.get(slot) ?? []), name]);
    }
    for (const [slot, names] of wants) {
      const ages = names.map((n) => (probe.get(n) as { createdAt: number }).createdAt);
      const oldest = Math.min(...ages);
      const winners = names.filter((_, i) => ages[i] === oldest);
      if (winners.length !== 1) continue;
      const winner = winners[0] as string;
      taken.add(slot);
      result.set(winner, addressAt(pool, first + slot));
    }
    waiting = waiting.filter((n) => !result.has(n));
  }
  return result;
}
