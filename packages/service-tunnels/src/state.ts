import type { SlotRecord } from './classify.js';

/*
 * What both tunnel plugins keep in their state directory (`tunnels.json`): the endpoint slots of an ingress node and
 * the pod namespaces set up. A file is read back hostile: cut to a bound, every entry checked.
 */

/** At most this many entries of each kind are read back (a hostile or broken file is cut, never trusted whole). */
export const MAX_SAVED_ENTRIES = 65_536;

const entries = (value: unknown): [string, unknown][] => (value !== null && typeof value === 'object' && !Array.isArray(value) ? Object.entries(value).slice(0, MAX_SAVED_ENTRIES) : []);

/** Endpoint slots as saved: `{ "<address>": { "slot": N, "drainingSince"?: ms } }`; bad entries are left out. */
export function slotsFromJson(value: unknown): Map<string, SlotRecord> {
  const slots = new Map<string, SlotRecord>();
  for (const [address, r] of entries(value)) {
    const { slot, drainingSince } = (r ?? {}) as { slot?: unknown; drainingSince?: unknown };
    if (typeof slot !== 'number' || !Number.isInteger(slot) || slot < 1) continue;
    slots.set(address, { slot, ...(typeof drainingSince === 'number' ? { drainingSince } : {}) });
  }
  return slots;
}

/** Pod namespaces set up, as saved: `{ "<namespace path>": "<pod address>" }`. */
export function podsFromJson(value: unknown): Map<string, string> {
  const pods = new Map<string, string>();
  for (const [path, address] of entries(value)) if (typeof address === 'string') pods.set(path, address);
  return pods;
}

/** A map as a JSON object sorted by key (equal states write equal files). */
export function sortedObject<K extends string | number, V>(map: ReadonlyMap<K, V>): Record<string, V> {
  return Object.fromEntries([...map].map(([k, v]) => [String(k), v] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
