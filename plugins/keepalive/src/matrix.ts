import type { Plane } from './config.js';
import type { ProbeResult } from './prober.js';

/** One node's view: what `/status` of its probe server (and `/api/keepalive/status`) answers. */
export interface NodeStatus {
  readonly node: string;
  readonly started: string;
  readonly intervalMs: number;
  readonly planes: readonly Plane[];
  /** The peers this node probes (all Ready peers up to maxPeers, else its rendezvous share). */
  readonly probing: readonly string[];
  readonly results: readonly ProbeResult[];
  /** Per target, what its planes together point at, when something fails. */
  readonly diagnosis: Readonly<Record<string, string>>;
  readonly summary: string;
  /** Every probe that has an address has run and answered. */
  readonly converged: boolean;
  /**
   * This node's row of the probe matrix, per plane: for each target the latest RTT in ms, `✗` failing, `…` not
   * probed yet, `-` no address on that plane. `weft lab status` prints the rows of all nodes as matrices.
   */
  readonly row: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/** What the planes of one target say together. */
export function diagnose(results: readonly ProbeResult[]): string | undefined {
  const by = new Map(results.map((r) => [r.plane, r]));
  const state = (p: Plane) => {
    const r = by.get(p);
    if (!r || r.missing !== undefined || r.at === undefined) return undefined;
    return r.up;
  };
  const [u, o, p] = [state('underlay'), state('overlay'), state('pod')];
  // Refused: the node's kernel answered with a reset — it is there, but nothing listens on the probe port. Not
  // "unreachable": its agent is stopped (or its probe server is), and its tunnel may well still carry traffic.
  const node = [by.get('underlay'), by.get('overlay')].filter((r) => r !== undefined && r.missing === undefined && r.at !== undefined);
  if (node.length > 0 && node.every((r) => r?.result === 'refused')) return 'agent: the node answers but its weft agent does not (probe port refused) — is the agent stopped?';
  if (u === true && o === false) return 'tunnel: the underlay answers, the overlay does not — look at WireGuard (handshakes, endpoints, keys)';
  if ((u === true || o === true) && p === false) return 'pod network: the node answers, the address in its pod CIDR does not — look at its pod bridge and routes';
  if (u === false && o === true) return 'underlay: its internal address does not answer while the overlay does — a firewall or route on the underlay';
  if (u === false && o !== true) return 'unreachable: the node does not answer on any plane — is it down, or cut off?';
  if (u === undefined && (o === false || p === false)) return 'failing: see the planes';
  return undefined;
}

/** A node's status from its prober's results. */
export function nodeStatus(base: { node: string; started: string; intervalMs: number; planes: readonly Plane[]; probing: readonly string[] }, results: readonly ProbeResult[]): NodeStatus {
  const diagnosis: Record<string, string> = {};
  for (const target of base.probing) {
    const d = diagnose(results.filter((r) => r.target === target));
    if (d) diagnosis[target] = d;
  }
  const done = results.filter((r) => r.at !== undefined || r.missing !== undefined);
  const up = results.filter((r) => r.up).length;
  const probed = results.filter((r) => r.missing === undefined).length;
  const row: Record<string, Record<string, string>> = {};
  for (const r of results) {
    const cell = r.missing !== undefined ? '-' : r.at === undefined ? '…' : r.up ? (r.rttMs !== undefined && r.rttMs < 10 ? r.rttMs.toFixed(1) : String(Math.round(r.rttMs ?? 0))) : '✗';
    (row[r.plane] ??= {})[r.target] = cell;
  }
  return {
    ...base,
    row,
    results,
    diagnosis,
    summary: `${String(up)}/${String(probed)} probes up${Object.keys(diagnosis).length > 0 ? `, failing: ${Object.keys(diagnosis).join(', ')}` : ''}`,
    converged: done.length === results.length && results.every((r) => r.up || r.missing !== undefined),
  };
}

/** One cell of the cluster's matrix. */
export interface MatrixCell {
  readonly source: string;
  readonly target: string;
  readonly plane: Plane;
  readonly up: boolean;
  readonly rttMs?: number;
  readonly result?: string;
  readonly error?: string;
  readonly at?: number;
  readonly udpLoss?: number;
}

/** The whole cluster's probe matrix, gathered from every node's status; partial when some do not answer. */
export interface Matrix {
  readonly generatedAt: string;
  readonly planes: readonly Plane[];
  readonly nodes: readonly string[];
  /** Nodes whose status could not be had, and why. */
  readonly missing: readonly { readonly node: string; readonly error: string }[];
  readonly cells: readonly MatrixCell[];
  readonly diagnosis: readonly { readonly source: string; readonly target: string; readonly text: string }[];
}

/** Puts every node's status together; a node that did not answer is listed under `missing`. */
export function assembleMatrix(nodes: readonly string[], planes: readonly Plane[], statuses: ReadonlyMap<string, Pick<NodeStatus, 'results' | 'diagnosis'> | { error: string }>, now = new Date()): Matrix {
  const cells: MatrixCell[] = [];
  const missing: { node: string; error: string }[] = [];
  const diagnosis: { source: string; target: string; text: string }[] = [];
  for (const node of [...nodes].sort()) {
    const s = statuses.get(node);
    if (!s || 'error' in s) {
      missing.push({ node, error: s ? s.error : 'not asked' });
      continue;
    }
    for (const r of s.results) {
      if (r.missing !== undefined || r.at === undefined) continue;
      cells.push({
        source: node,
        target: r.target,
        plane: r.plane,
        up: r.up,
        ...(r.rttMs !== undefined ? { rttMs: r.rttMs } : {}),
        ...(r.result ? { result: r.result } : {}),
        ...(r.error ? { error: r.error } : {}),
        at: r.at,
        ...(r.udp ? { udpLoss: r.udp.lastLoss } : {}),
      });
    }
    for (const [target, text] of Object.entries(s.diagnosis)) diagnosis.push({ source: node, target, text });
  }
  return { generatedAt: now.toISOString(), planes, nodes: [...nodes].sort(), missing, cells, diagnosis };
}

/** Healthy when every probed pair answers on every plane and every node's status was had. */
export function health(m: Matrix): { healthy: boolean; failing: { source: string; target: string; plane: Plane; result: string }[]; missing: Matrix['missing'] } {
  const failing = m.cells.filter((c) => !c.up).map((c) => ({ source: c.source, target: c.target, plane: c.plane, result: c.result ?? 'failed' }));
  return { healthy: failing.length === 0 && m.missing.length === 0, failing, missing: m.missing };
}
