import { type ClusterView, type NodeInfo, NODE_FIELDS, type NodeField, type NodeReads } from '../api/cluster.js';

export { NODE_FIELDS, type NodeField, type NodeReads };

/** Keys to compare: exact ones and prefixes; `all` when the plugin did not narrow them. */
interface KeySet {
  readonly all: boolean;
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
}

/** {@link NodeReads}, prepared for comparing many views. */
export interface CompiledReads {
  readonly annotations: KeySet;
  readonly labels: KeySet;
  readonly fields: readonly NodeField[];
}

function keySet(keys: readonly string[] | undefined): KeySet {
  if (keys === undefined) return { all: true, exact: new Set(), prefixes: [] };
  return { all: false, exact: new Set(keys.filter((k) => !k.endsWith('*'))), prefixes: keys.filter((k) => k.endsWith('*')).map((k) => k.slice(0, -1)) };
}

/** Prepares a plugin's `reads` (absent: it reads everything). */
export function compileReads(reads: NodeReads | undefined): CompiledReads {
  return { annotations: keySet(reads?.annotations), labels: keySet(reads?.labels), fields: reads?.fields ?? NODE_FIELDS };
}

const matches = (set: KeySet, key: string) => set.all || set.exact.has(key) || set.prefixes.some((p) => key.startsWith(p));

function mapChanged(set: KeySet, a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  if (a === b) return false;
  for (const k in a) if (a[k] !== b[k] && matches(set, k)) return true;
  for (const k in b) if (!(k in a) && matches(set, k)) return true;
  return false;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether a node changed in a part the plugin reads. */
export function nodeChangedFor(reads: CompiledReads, a: NodeInfo, b: NodeInfo): boolean {
  if (a === b) return false;
  for (const f of reads.fields) if (!sameValue(a[f], b[f])) return true;
  return mapChanged(reads.annotations, a.annotations, b.annotations) || mapChanged(reads.labels, a.labels, b.labels);
}

/**
 * Whether `next` differs from `prev` in anything a plugin that reads `reads` and watches what its view holds can
 * see: a node that came or went, a read part of a node, the Services or EndpointSlices, the address plan.
 */
export function viewChangedFor(reads: CompiledReads, prev: ClusterView, next: ClusterView): boolean {
  if (prev === next) return false;
  if (prev.nodes.length !== next.nodes.length || prev.self.name !== next.self.name) return true;
  for (let i = 0; i < next.nodes.length; i++) {
    const a = prev.nodes[i] as NodeInfo;
    const b = next.nodes[i] as NodeInfo;
    if (a.name !== b.name || nodeChangedFor(reads, a, b)) return true;
  }
  if (prev.datedBy !== next.datedBy || (prev.addressPlan !== next.addressPlan && JSON.stringify(prev.addressPlan) !== JSON.stringify(next.addressPlan))) return true;
  if (prev.services !== next.services && JSON.stringify(prev.services) !== JSON.stringify(next.services)) return true;
  return prev.endpointSlices !== next.endpointSlices && JSON.stringify(prev.endpointSlices) !== JSON.stringify(next.endpointSlices);
}

/**
 * What some plugin reads: the union of every enabled plugin's `reads` (one that did not narrow a part reads all of
 * it). What a source may leave out of the other nodes' infos (see {@link NodeSource.start}).
 */
export function unionReads(all: readonly (NodeReads | undefined)[]): NodeReads {
  const join = (part: 'annotations' | 'labels') => (all.some((r) => r?.[part] === undefined) ? undefined : [...new Set(all.flatMap((r) => r?.[part] ?? []))].sort());
  const annotations = join('annotations');
  const labels = join('labels');
  return { ...(annotations !== undefined ? { annotations } : {}), ...(labels !== undefined ? { labels } : {}) };
}

/**
 * A source's narrowing of the nodes it reports to what some plugin reads: the annotations and labels nobody reads are
 * left out of every node but the own one (which keeps all: the publisher compares with it), so that a change to them is
 * no change at all and costs the agent nothing past noticing it. `location` is made from the whole node first. Returns
 * the node itself when nothing is left out.
 */
export function nodeNarrower(reads: NodeReads | undefined, selfName: string): (node: NodeInfo) => NodeInfo {
  const compiled = compileReads(reads);
  const keep = (set: KeySet, map: Readonly<Record<string, string>>) => {
    if (set.all) return map;
    let narrowed: Record<string, string> | undefined;
    for (const k in map) {
      if (matches(set, k)) continue;
      narrowed ??= { ...map };
      delete narrowed[k];
    }
    return narrowed ?? map;
  };
  return (node) => {
    if (node.name === selfName) return node;
    const annotations = keep(compiled.annotations, node.annotations);
    const labels = keep(compiled.labels, node.labels);
    return annotations === node.annotations && labels === node.labels ? node : { ...node, annotations, labels };
  };
}

/** Whether two plain values (what JSON holds, and undefined) are equal, deeply. */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  for (const k in x) if (!(k in y) || !sameData(x[k], y[k])) return false;
  for (const k in y) if (!(k in x)) return false;
  return true;
}
