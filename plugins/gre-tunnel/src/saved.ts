import type { Logger, PluginState } from '@weft/core';
import { podsFromJson, type SlotRecord, slotsFromJson, sortedObject } from '@weft/service-tunnels';

/** What the plugin keeps in its state directory: the ingress node's endpoint slots, the pods it set up. */
export interface Saved {
  readonly slots: ReadonlyMap<string, SlotRecord>;
  /** Namespace path → the pod address it was set up for. */
  readonly pods: ReadonlyMap<string, string>;
}

const FILE = 'tunnels.json';

/** Reads `tunnels.json`; an unreadable file is logged and treated as empty (slots are made afresh). */
export async function loadSaved(state: PluginState, logger: Logger): Promise<Saved> {
  const text = (await state.readFile(FILE))?.toString('utf8');
  if (text === undefined) return { slots: new Map(), pods: new Map() };
  try {
    const o = JSON.parse(text) as { slots?: unknown; pods?: unknown };
    return { slots: slotsFromJson(o.slots), pods: podsFromJson(o.pods) };
  } catch {
    logger.warn({ file: `${state.dir}/${FILE}` }, 'unreadable tunnel state; endpoint slots are made afresh (pinned flows may move once)');
    return { slots: new Map(), pods: new Map() };
  }
}

/** The file's text for a state (sorted: equal states write equal files). */
export function savedText(saved: Saved): string {
  return `${JSON.stringify({ slots: sortedObject(saved.slots), pods: sortedObject(saved.pods) })}\n`;
}

export async function writeSaved(state: PluginState, text: string): Promise<void> {
  await state.writeFile(FILE, text);
}
