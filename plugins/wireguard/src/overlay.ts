import { addressAt, networkContains, networkSize, offsetOf, parseNetwork } from '@weft/core';
import { createHash } from 'node:crypto';

/**
 * Overlay addresses: one IPv4 address per node from `overlayCIDR`, and the IPv6 address at the same offset in
 * `overlayCIDR6`. The rule, which every node applies alike:
 *
 * 1. A node's candidates are derived from its name (`sha256("<name>#<i>")` for i = 0, 1, …), so a node that lost
 *    its state goes back to the same address when it is free.
 * 2. A node keeps the address it has (persisted in its state directory, published with the time it claimed it)
 *    unless another node claims the same address and wins: the **earlier claim** wins, and on equal times the
 *    **name that sorts first**. The loser moves to its next candidate that nobody claims.
 * 3. Until it has moved, a loser's contested address is left out of every peer's allowed IPs, so traffic for that
 *    address goes to the winner only. Two nodes can therefore never keep the same address.
 */
export interface Claim {
  readonly node: string;
  readonly ip4: string;
  /** Unix seconds. */
  readonly since: number;
}

/** Whether claim `a` keeps the address against claim `b`. */
export function beats(a: Claim, b: Claim): boolean {
  return a.since !== b.since ? a.since < b.since : a.node < b.node;
}

/** For every contested address, who keeps it. */
export function winners(claims: readonly Claim[]): Map<string, string> {
  const out = new Map<string, Claim>();
  for (const c of claims) {
    const held = out.get(c.ip4);
    if (!held || beats(c, held)) out.set(c.ip4, c);
  }
  return new Map([...out].map(([ip, c]) => [ip, c.node]));
}

/** The offsets a node tries, in order (never the network's first or last address). */
export function* candidateOffsets(name: string, size: bigint): Generator<bigint> {
  const usable = size - 2n;
  for (let i = 0; ; i++) {
    const digest = createHash('sha256').update(`${name}#${String(i)}`).digest();
    yield 1n + (digest.readBigUInt64BE(0) % usable);
  }
}

/** Self's overlay addresses: kept, or (first start, lost a contest, range changed) newly chosen. */
export interface OverlayChoice {
  readonly ip4: string;
  readonly ip6: string;
  readonly since: number;
  /** Why the address changed (absent when kept). */
  readonly reason?: string;
}

/**
 * Applies the rule above for `self`. `others` are the claims other nodes publish; `held` what self persisted.
 * Throws when the range has no free address.
 */
export function chooseOverlay(input: {
  readonly self: string;
  readonly held: { readonly ip4: string; readonly since: number } | undefined;
  readonly others: readonly Claim[];
  readonly overlayCIDR: string;
  readonly overlayCIDR6: string;
  readonly now: number;
}): OverlayChoice {
  const v4 = parseNetwork(input.overlayCIDR);
  const v6 = parseNetwork(input.overlayCIDR6);
  if (!v4 || !v6) throw new Error(`bad overlay ranges ${input.overlayCIDR}, ${input.overlayCIDR6}`);
  const six = (ip4: string) => addressAt(v6, offsetOf(v4, ip4) as bigint);
  const others = input.others.filter((c) => c.node !== input.self);
  let reason: string;
  if (input.held && networkContains(v4, input.held.ip4)) {
    const mine: Claim = { node: input.self, ip4: input.held.ip4, since: input.held.since };
    const rival = others.find((c) => c.ip4 === mine.ip4 && beats(c, mine));
    if (!rival) return { ip4: mine.ip4, ip6: six(mine.ip4), since: mine.since };
    reason = `${mine.ip4} is also claimed by ${rival.node}, whose claim is older (or equal and its name sorts first)`;
  } else {
    reason = input.held ? `${input.held.ip4} is outside ${input.overlayCIDR}` : 'first start';
  }
  const taken = new Set(others.map((c) => c.ip4));
  const size = networkSize(v4);
  const tries = size < 100_000n ? Number(size) * 8 : 100_000;
  const candidates = candidateOffsets(input.self, size);
  for (let i = 0; i < tries; i++) {
    const ip4 = addressAt(v4, candidates.next().value as bigint);
    if (!taken.has(ip4)) return { ip4, ip6: six(ip4), since: input.now, reason };
  }
  throw new Error(`no free overlay address in ${input.overlayCIDR} for ${input.self} (${String(taken.size)} claimed)`);
}
