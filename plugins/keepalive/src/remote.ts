import { describeError, httpGet, HttpGetError, joinHostPort, z } from '@weft/core';
import { PLANES } from './config.js';
import type { NodeStatus } from './matrix.js';
import { RESULTS } from './prober.js';


const text = (max: number) => z.string().max(max);
const count = z.number().int().min(0);
/** What the matrix reads of a peer's status: its name, its results and diagnoses. */
export type PeerStatus = Pick<NodeStatus, 'node' | 'results' | 'diagnosis'>;

/** What the matrix reads of a peer's answer, every field checked, since the peer wrote it (the rest is ignored). */
const RemoteStatus = z.object({
  node: text(253),
  results: z
    .array(
      z.object({
        target: text(253),
        plane: z.enum(PLANES),
        address: text(64).optional(),
        missing: text(500).optional(),
        up: z.boolean(),
        result: z.enum(RESULTS).optional(),
        rttMs: z.number().min(0).optional(),
        error: text(500).optional(),
        at: z.number().optional(),
        ok: count,
        failed: count,
        udp: z.object({ sent: count, received: count, lost: count, reordered: count, duplicates: count, lastLoss: z.number().min(0).max(1) }).optional(),
      }),
    )
    .max(300_000),
  diagnosis: z.record(text(253), text(500)),
});

/** Checks a peer's answer; says what is wrong with it, or the status. */
export function parseRemoteStatus(body: string): PeerStatus | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { error: 'its probe server answered something that is not JSON' };
  }
  const r = RemoteStatus.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    return { error: `its probe server's status is malformed at ${issue ? issue.path.join('.') || '(root)' : '?'}: ${issue?.message ?? 'invalid'}` };
  }
  return r.data;
}

/** GET a peer's probe server `/status` within `timeoutMs`, reading at most `maxBytes` of it. */
export async function fetchStatus(address: string, port: number, timeoutMs: number, maxBytes: number): Promise<PeerStatus | { error: string }> {
  try {
    const r = await httpGet({ url: `http://${joinHostPort(address, port)}` }, '/status', { timeoutMs, maxBytes });
    if (r.status !== 200) return { error: `HTTP ${String(r.status)}` };
    return parseRemoteStatus(r.body);
  } catch (err) {
    if (err instanceof HttpGetError && err.reason === 'too-large') return { error: `its probe server's status is over ${String(maxBytes)} bytes (matrix.maxStatusBytes)` };
    return { error: describeError(err) };
  }
}

/** Runs `work` on every item, at most `limit` at once; results in the items' order. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Keeps one answer for `maxAgeMs` (monotonic): calls within that time, and calls while one is being made, share it.
 * Bounds what an unauthenticated request can make this node do.
 */
export function cached<T>(maxAgeMs: number, make: () => Promise<T>): () => Promise<T> {
  let inflight: Promise<T> | undefined;
  let last: { at: number; value: T } | undefined;
  return () => {
    if (last && performance.now() - last.at < maxAgeMs) return Promise.resolve(last.value);
    inflight ??= make()
      .then((value) => {
        last = { at: performance.now(), value };
        return value;
      })
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  };
}
