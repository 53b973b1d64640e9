// Service tunnels benchmark (the shared part so far: @weft/service-tunnels).
// 1. A Maglev table (M = 65537) for 10, 100 and 1000 endpoints: build time (median of 7).
// 2. One endpoint removed from a 1000-endpoint VIP: how many buckets change (what an nft transaction must rewrite),
//    against the 1/N a perfect scheme would move.
import { performance } from 'node:perf_hooks';
import { changedBuckets, DEFAULT_TABLE_SIZE, maglevTable } from '../packages/service-tunnels/dist/index.js';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pods = (n) => Array.from({ length: n }, (_, i) => `198.19.${i >> 8}.${i & 255}`);

export async function serviceTunnelsBenchmark() {
  const builds = [];
  for (const n of [10, 100, 1000]) {
    const times = [];
    for (let r = 0; r < 7; r++) {
      const t = performance.now();
      maglevTable(pods(n), `seed-${r}`);
      times.push(performance.now() - t);
    }
    builds.push({ endpoints: n, buildMs: +median(times).toFixed(2) });
  }
  const before = maglevTable(pods(1000), 'seed');
  const after = maglevTable(pods(1000).filter((_, i) => i !== 500), 'seed');
  const changed = changedBuckets(before, after).length;
  return { tableSize: DEFAULT_TABLE_SIZE, builds, oneOf1000Removed: { changedBuckets: changed, fraction: +(changed / DEFAULT_TABLE_SIZE).toFixed(4), ideal: +(1 / 1000).toFixed(4) } };
}
