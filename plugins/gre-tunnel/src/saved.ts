import type { Logger, PluginState } from '@weft/core';
import type { SlotRecord } from '@weft/service-tunnels';

/** What the plugin keeps in its state directory: the ingress node's endpoint slots, the pods it set up. */
export interface Saved {
  readonly slots: ReadonlyMap<string, SlotRecord>;
  /** Namespace path → the pod address it was set up for. */
  readonly pods: ReadonlyMap<string, string>;
}

const FILE = 'tunnels.json';
/** At most this many slots and pods are read back (a hostile or broken file is cut, never trusted whole). */
const MAX_ENTRIES = 65_536;

/** Reads `tunnels.json`; an unreadable file is logged and treated as empty (slots are made afresh). */
export async function loadSaved(state: PluginState, logger: Logger): Promise<Saved> {
  const text = (await state.readFile(FILE))?.toString('utf8');
  const empty: Saved = { slots: new Map(), pods: new Map() };
  if (text === undefined) return empty;
  try {
    const o = JSON.parse(text) as { slots?: unknown; pods?: unknown };
    const slots = new Map<string, SlotRecord>();
    for (const [address, r] of Object.entries((o.slots ?? {}) as Record<string, { slot?: unknown; drainingSince?: unknown }>).slice(0, MAX_ENTRIES)) {
      if (typeof r.slot !== 'number' || !Number.isInteger(r.slot) || r.slot < 1) continue;
      slots.set(address, { slot: r.slot, ...(typeof r.drainingSince === 'number' ? { drainingSince: r.drainingSince } : {}) });
    }
    const pods = new Map<string, string>();
    for (const [path, address] of Object.entries((o.pods ?? {}) as Record<string, unknown>).slice(0, MAX_ENTRIES)) if (typeof address === 'string') pods.set(path, address);
    return { slots, pods };
  } catch {
    logger.warn({ file: `${state.dir}/${FILE}` }, 'unreadable tunnel state; endpoint slots are made afresh (pinned flows may move once)');
    return empty;
  }
}

/** The file's text for a state (sorted: equal states write equal files). */
export function savedText(saved: Saved): string {
  const slots = Object.fromEntries([...saved.slots].sort(([a], [b]) => (a < b ? -1 : 1)));
  const pods = Object.fromEntries([...saved.pods].sort(([a], [b]) => (a < b ? -1 : 1)));
  return `${JSON.stringify({ slots, pods })}\n`;
}

export async function writeSaved(state: PluginState, text: string): Promise<void> {
  await state.writeFile(FILE, text);
}
