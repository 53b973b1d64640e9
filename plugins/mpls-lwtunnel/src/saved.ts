import type { Logger, PluginState } from '@weft/core';
import { MAX_SAVED_ENTRIES, podsFromJson, type SlotRecord, slotsFromJson, sortedObject } from '@weft/service-tunnels';
import type { LabelBook } from './labels.js';

/** What the plugin keeps in its state directory: endpoint slots (ingress), pods set up, this node's labels. */
export interface Saved {
  readonly slots: ReadonlyMap<string, SlotRecord>;
  /** Namespace path → the pod address it was set up for. */
  readonly pods: ReadonlyMap<string, string>;
  readonly book: LabelBook;
}

const FILE = 'tunnels.json';
const isLabel = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 16 && n <= 1_048_575;
const entries = (value: unknown): [string, unknown][] => (value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.entries(value).slice(0, MAX_SAVED_ENTRIES) : []);

/** Reads `tunnels.json`; an unreadable file is logged and treated as empty. */
export async function loadSaved(state: PluginState, logger: Logger): Promise<Saved> {
  const text = (await state.readFile(FILE))?.toString('utf8');
  const empty = (): Saved => ({ slots: new Map(), pods: new Map(), book: { labels: new Map(), released: new Map() } });
  if (text === undefined) return empty();
  try {
    const o = JSON.parse(text) as { slots?: unknown; pods?: unknown; labels?: unknown; released?: unknown };
    const labels = new Map<string, number>();
    for (const [address, label] of entries(o.labels)) if (isLabel(label)) labels.set(address, label);
    const released = new Map<number, number>();
    for (const [label, at] of entries(o.released)) if (isLabel(Number(label)) && typeof at === 'number') released.set(Number(label), at);
    return { slots: slotsFromJson(o.slots), pods: podsFromJson(o.pods), book: { labels, released } };
  } catch {
    logger.warn({ file: `${state.dir}/${FILE}` }, 'unreadable tunnel state; slots and labels are made afresh (pinned flows may move once)');
    return empty();
  }
}

/** The file's text for a state (sorted: equal states write equal files). */
export function savedText(saved: Saved): string {
  return `${JSON.stringify({ slots: sortedObject(saved.slots), pods: sortedObject(saved.pods), labels: sortedObject(saved.book.labels), released: sortedObject(saved.book.released) })}\n`;
}

export async function writeSaved(state: PluginState, text: string): Promise<void> {
  await state.writeFile(FILE, text);
}
