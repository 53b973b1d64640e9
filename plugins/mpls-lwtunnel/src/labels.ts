import { canonicalIP, networkContains, parseNetwork } from '@weft/core';

/*
 * The labels a node gives its endpoint pods: one per pod address, from the configured range, kept across restarts
 * (the state directory), and never given to another pod while an ingress node may still push it.
 */

/** This node's labels: pod address → label, and labels let go (label → when, ms since the epoch). */
export interface LabelBook {
  readonly labels: ReadonlyMap<string, number>;
  readonly released: ReadonlyMap<number, number>;
}

/** What a node may publish: at most this many labels, in at most this many characters. */
export const ANNOTATION_LIMITS = { labels: 4096, bytes: 65_536 } as const;

/**
 * Labels for the pods `wanted` (this node's endpoint pod addresses). A pod keeps its label; a new one takes the
 * lowest label of the range that is neither in use nor held; a pod no longer wanted lets its label go, held for
 * `holdMs` (an ingress node that has not seen the change yet still pushes it, and must not reach another pod). A
 * label outside the range (the range changed) is let go. Pods beyond the free labels get none: `exhausted`.
 */
export function allocateLabels(
  wanted: readonly string[],
  book: LabelBook,
  options: { readonly first: number; readonly last: number; readonly now: number; readonly holdMs: number },
): { book: LabelBook; exhausted: string[] } {
  const { first, last, now, holdMs } = options;
  const want = new Set(wanted);
  const labels = new Map<string, number>();
  const released = new Map<number, number>();
  for (const [label, at] of book.released) if (now - at < holdMs && at <= now) released.set(label, at);
  for (const [address, label] of book.labels) {
    if (want.has(address) && label >= first && label <= last && !released.has(label)) labels.set(address, label);
    else released.set(label, now);
  }
  const used = new Set(labels.values());
  const exhausted: string[] = [];
  let next = first;
  for (const address of [...want].sort(compareAddresses)) {
    if (labels.has(address)) continue;
    while (next <= last && (used.has(next) || released.has(next))) next += 1;
    if (next > last) {
      exhausted.push(address);
      continue;
    }
    labels.set(address, next);
    used.add(next);
  }
  // Held labels outside the range are forgotten (the range moved past them: they can never be given again).
  for (const label of [...released.keys()]) if (label < first || label > last) released.delete(label);
  return { book: { labels, released }, exhausted };
}

/** The annotation's value for a node's labels: `<address>=<label>` by address, comma-separated; empty: none. */
export function labelsText(labels: ReadonlyMap<string, number>): string {
  return [...labels].sort(([a], [b]) => compareAddresses(a, b)).map(([a, l]) => `${a}=${String(l)}`).join(',');
}

/**
 * A peer's `weft.io/mpls-labels`, checked: hostile until then. Each entry must name an address in that node's own pod
 * CIDRs (a node labels only its own pods: it can never draw another node's traffic) and a label of the range; an
 * address or a label given twice is dropped with every entry that gives it (never the first one kept). Bad entries are
 * left out and said; the good ones stand.
 */
export function parseLabels(
  text: string | undefined,
  node: { readonly name: string; readonly podCIDRs: readonly string[] },
  range: { readonly first: number; readonly last: number },
): { labels: Map<string, number>; problems: string[] } {
  const labels = new Map<string, number>();
  const problems: string[] = [];
  if (text === undefined || text.trim() === '') return { labels, problems };
  if (text.length > ANNOTATION_LIMITS.bytes) return { labels, problems: [`${String(text.length)} characters, more than ${String(ANNOTATION_LIMITS.bytes)}`] };
  const parts = text.split(',');
  if (parts.length > ANNOTATION_LIMITS.labels) return { labels, problems: [`${String(parts.length)} labels, more than ${String(ANNOTATION_LIMITS.labels)}`] };
  const cidrs = node.podCIDRs.map((c) => parseNetwork(c)).filter((n) => n !== undefined);
  const entries: [string, number][] = [];
  for (const part of parts) {
    const m = /^\s*([0-9A-Fa-f.:]{2,45})=([0-9]{1,7})\s*$/.exec(part);
    const address = m ? canonicalIP(m[1] as string) : undefined;
    const label = m ? Number(m[2]) : NaN;
    if (!m || address === undefined) {
      if (problems.length < 16) problems.push(`${JSON.stringify(part.slice(0, 60))}: expected <pod IP>=<label>`);
      continue;
    }
    if (label < range.first || label > range.last) {
      if (problems.length < 16) problems.push(`${address}=${String(label)}: the label is outside ${String(range.first)}-${String(range.last)}`);
      continue;
    }
    if (!cidrs.some((n) => networkContains(n, address))) {
      if (problems.length < 16) problems.push(`${address}: not in ${node.name}'s pod CIDRs`);
      continue;
    }
    entries.push([address, label]);
  }
  const count = (values: readonly (string | number)[]) => values.reduce((m, v) => m.set(v, (m.get(v) ?? 0) + 1), new Map<string | number, number>());
  const byAddress = count(entries.map(([a]) => a));
  const byLabel = count(entries.map(([, l]) => l));
  for (const [address, label] of entries) {
    if ((byAddress.get(address) ?? 0) > 1) {
      if (problems.length < 16) problems.push(`${address}: given more than one label`);
      continue;
    }
    if ((byLabel.get(label) ?? 0) > 1) {
      if (problems.length < 16) problems.push(`${String(label)}: given to more than one pod`);
      continue;
    }
    labels.set(address, label);
  }
  return { labels, problems: [...new Set(problems)] };
}

/** Addresses in a stable order (text order; every node sorts alike). */
export function compareAddresses(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
