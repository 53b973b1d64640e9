import type { Logger, PluginState } from '@weft/core';
import type { SlotRecord } from '@weft/service-tunnels';
import type { LabelBook } from './labels.js';

/** What the plugin keeps in its state directory: endpoint slots (ingress), pods set up, this node's labels. */
export interface Saved {
  readonly slots: ReadonlyMap<string, SlotRecord>;
  /** Namespace path → the pod address it was set up for. */
  readonly pods: ReadonlyMap<string, string>;
  readonly book: LabelBook;
}

const FILE = 'tunnels.json';
/** At most this many entries of each kind are read back (a hostile or broken file is cut, never trusted whole). */
const MAX_ENTRIES = 65_536;
const isLabel = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 16 && n <= 1_048_575;

/** Reads `tunnels.json`; an unreadable file is logged and treated as empty. */
export async function loadSaved(state: PluginState, logger: Logger): Promise<Saved> {
  const text = (await state.readFile(FILE))?.toString('utf8');
  const empty: Saved = { slots: new Map(), pods: new Map(), book: { labels: new Map(), released: new Map() } };
  if (text === undefined) return empty;
  try {
    const o = JSON.parse(text) as { slots?: unknown; pods?: unknown; labels?: unknown; released?: unknown };
    const slots = new Map<string, SlotRecord>();
    for (const [address, r] of Object.entries((o.slots ?? {}) as Record<string, { slot?: unknown; drainingSince?: unknown }>).slice(0, MAX_ENTRIES)) {
      if (typeof r.slot !== 'number' || !Number.isInteger(r.slot) || r.slot < 1) continue;
      slots.set(address, { slot: r.slot, ...(typeof r.drainingSince === 'number' ? { drainingSince: r.drainingSince } : {}) });
    }
    const pods = new Map<string, string>();
    for (const [path, address] of Object.entries((o.pods ?? {}) as Record<string, unknown>).slice(0, MAX_ENTRIES)) if (typeof address === 'string') pods.set(path, address);
    const labels = new Map<string, number>();
    for (const [address, label] of Object.entries((o.labels ?? {}) as Record<string, unknown>).slice(0, MAX_ENTRIES)) if (isLabel(label)) labels.set(address, label);
    const released = new Map<number, number>();
    for (const [label, at] of Object.entries((o.released ?? {}) as Record<string, unknown>).slice(0, MAX_ENTRIES)) if (isLabel(Number(label)) && typeof at === 'number') released.set(Number(label), at);
    return { slots, pods, book: { labels, released } };
  } catch {
    logger.warn({ file: `${state.dir}/${FILE}` }, 'unreadable tunnel state; slots and labels are made afresh (pinned flows may move once)');
    return empty;
  }
}

/** The file's text for a state (sorted: equal states write equal files). */
export function savedText(saved: Saved): string {
  const sorted = <K, V>(m: ReadonlyMap<K, V>) => Object.fromEntries([...m].map(([k, v]) => [String(k), v] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return `${JSON.stringify({ slots: sorted(saved.slots), pods: sorted(saved.pods), labels: sorted(saved.book.labels), released: sorted(saved.book.released) })}\n`;
}

export async function writeSaved(state: PluginState, text: string): Promise<void> {
  await state.writeFile(FILE, text);
}
