import { describeError } from '@weft/core';
import type { PodNetnsFinder } from './netns.js';
import type { TunnelService } from './services.js';

/*
 * The endpoint pods on a node, as every tunnel plugin sets them up: each found by its address among the node's
 * namespaces, set up the plugin's way, its failure its own; the pods that stopped being endpoints cleaned.
 */

/** One endpoint pod on this node, as the last reconcile left it. */
export interface EndpointPod {
  readonly address: string;
  readonly vips: readonly string[];
  readonly state: 'ready' | 'missing' | 'failed';
  readonly netns?: string;
  readonly problem?: string;
}

/** This node's endpoint pods: pod address → the VIPs of its family its Services have, sorted by address. */
export function localEndpoints(services: readonly TunnelService[], self: string): Map<string, string[]> {
  const wanted = new Map<string, Set<string>>();
  for (const s of services) {
    for (const e of s.endpoints) {
      if (e.nodeName !== self) continue;
      const vips = s.vips.filter((v) => (v.includes(':') ? 6 : 4) === e.family);
      if (vips.length === 0) continue;
      const set = wanted.get(e.address) ?? new Set<string>();
      for (const v of vips) set.add(v);
      wanted.set(e.address, set);
    }
  }
  return new Map([...wanted].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([a, vips]) => [a, [...vips].sort()]));
}

/**
 * Sets up each wanted pod in its namespace (`setUp`), then clears (`clear`) the namespaces of pods set up before
 * and no longer wanted (a namespace that is gone took everything with it). Returns each pod's state and the
 * namespaces now set up (namespace path → pod address: what the plugin keeps, to clear them later).
 */
export async function setUpPods(
  wanted: ReadonlyMap<string, readonly string[]>,
  previous: ReadonlyMap<string, string>,
  finder: Pick<PodNetnsFinder, 'find' | 'contestedBy'>,
  setUp: (path: string, address: string, vips: readonly string[]) => Promise<void>,
  clear: (path: string) => Promise<void>,
): Promise<{ pods: EndpointPod[]; setUp: Map<string, string> }> {
  const pods: EndpointPod[] = [];
  const next = new Map<string, string>();
  for (const [address, vips] of wanted) {
    let ns: Awaited<ReturnType<PodNetnsFinder['find']>>;
    try {
      ns = await finder.find(address);
    } catch (err) {
      pods.push({ address, vips, state: 'failed', problem: `looking for its namespace: ${describeError(err)}` });
      continue;
    }
    if (!ns) {
      const contested = finder.contestedBy(address);
      pods.push({ address, vips, state: 'missing', problem: contested.length > 0 ? `${String(contested.length)} namespaces hold ${address}: none is set up` : `no network namespace holds ${address}` });
      continue;
    }
    next.set(ns.path, address);
    try {
      await setUp(ns.path, address, vips);
      pods.push({ address, vips, state: 'ready', netns: ns.path });
    } catch (err) {
      pods.push({ address, vips, state: 'failed', netns: ns.path, problem: describeError(err) });
    }
  }
  for (const path of previous.keys()) if (!next.has(path)) await clear(path).catch(() => undefined);
  return { pods, setUp: next };
}

/**
 * When to look again for pods that are missing or failing: every `everyMs` for their first `windowMs` (a sandbox
 * still starting), then only at the resyncs — each look at a missing pod reads every namespace of the node.
 */
export class SoonRetry {
  private readonly since = new Map<string, number>();

  constructor(
    private readonly windowMs = 60_000,
    private readonly everyMs = 2000,
  ) {}

  /** Records which pods are not ready now (monotonic ms); the delay to come back after, if any. */
  next(notReady: readonly string[], now: number): number | undefined {
    const bad = new Set(notReady);
    for (const a of [...this.since.keys()]) if (!bad.has(a)) this.since.delete(a);
    for (const a of bad) if (!this.since.has(a)) this.since.set(a, now);
    return [...this.since.values()].some((t) => now - t < this.windowMs) ? this.everyMs : undefined;
  }
}
