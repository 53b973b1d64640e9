import { addressAt, networkContains, networkSize, offsetOf, parseNetwork } from '@weft/core';
import { createHash } from 'node:crypto';

/**
 * Overlay addresses: one IPv4 address per node from `overlayCIDR`, and the IPv6 address at the same offset in
 * `overlayCIDR6`. The rule, which every node applies alike:
 *
 * 1. A node's candidates are derived from its name (`sha256("<name>#<i>")` for i = 0, 1, …), so a node that lost
 *    its state goes back to the same address when it is free.
 * 2. A node keeps the address it has (persisted in its state directory) unless another node claims the same
 *    address and wins: the **earlier claim** wins. When another node claimed an address is when *this* node first
 *    saw it claim it (its {@link ClaimLedger}, persisted): what a node publishes about its own claim
 *    (`weft.io/wireguard-ip-since`) is only its word, so a claim cannot be dated back to evict an older one. Its own
 *    claim a node dates from its own record. On equal times **neither** keeps it (never the name that sorts first).
 * 3. Until it has moved, a loser's contested address is left out of every peer's allowed IPs, so traffic for that
 *    address goes to the winner only (to nobody, on a tie). Two nodes can therefore never keep the same address.
 */
export interface Claim {
  readonly node: string;
  readonly ip4: string;
  /** Unix seconds: when the claim was made (own claims), or first seen (others'). */
  readonly since: number;
}

/**
 * When this node first saw each other node claim each overlay address, in unix seconds (`claimKey` → seconds).
 * Persisted in the plugin's state, so that a restart does not forget who was first.
 */
export type ClaimLedger = Map<string, number>;

/** The ledger key of a node's claim to an address. */
export const claimKey = (node: string, ip4: string): string => `${node} ${ip4}`;

/**
 * Notes the claims the view shows now: a claim seen for the first time is dated `now`; one no longer made is
 * forgotten. Returns whether the ledger changed (then it is worth persisting).
 */
export function noteClaims(ledger: ClaimLedger, claims: readonly { readonly node: string; readonly ip4: string }[], now: number): boolean {
  let changed = false;
  const current = new Set(claims.map((c) => claimKey(c.node, c.ip4)));
  for (const key of current) {
    if (!ledger.has(key)) {
      ledger.set(key, now);
      changed = true;
    }
  }
  for (const key of [...ledger.keys()]) {
    if (!current.has(key)) {
      ledger.delete(key);
      changed = true;
    }
  }
  return changed;
}

/** A ledger read back from its JSON; entries that are not `"<node> <ip4>": seconds` are dropped. */
export function parseLedger(text: string | undefined): ClaimLedger {
  if (text === undefined) return new Map();
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return new Map();
    return new Map(Object.entries(parsed as Record<string, unknown>).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1]) && e[0].includes(' ')));
  } catch {
    return new Map();
  }
}

/** Whether claim `a` keeps the address against claim `b`: it is strictly earlier. */
export function beats(a: Claim, b: Claim): boolean {
  return a.since < b.since;
}

/** For every claimed address, who keeps it; an address whose earliest claims tie is nobody's (absent). */
export function winners(claims: readonly Claim[]): Map<string, string> {
  const out = new Map<string, { claim: Claim; tied: boolean }>();
  for (const c of claims) {
    const held = out.get(c.ip4);
    if (!held || beats(c, held.claim)) out.set(c.ip4, { claim: c, tied: false });
    else if (!beats(held.claim, c) && held.claim.node !== c.node) held.tied = true;
  }
  return new Map([...out].filter(([, h]) => !h.tied).map(([ip, h]) => [ip, h.claim.node]));
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
  /** Other nodes' claims, each dated when this node first saw it (the ledger). */
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
    const rival = others.find((c) => c.ip4 === mine.ip4 && !beats(mine, c));
    if (!rival) return { ip4: mine.ip4, ip6: six(mine.ip4), since: input.held.since };
    reason = beats(rival, mine)
      ? `${mine.ip4} is also claimed by ${rival.node}, whose claim is older`
      : `${mine.ip4} is also claimed by ${rival.node}, as old as this node's claim: neither keeps it`;
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
