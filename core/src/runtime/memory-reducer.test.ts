import { describe, expect, it } from 'vitest';
import { createLogger } from '../observe/logger.js';
import { MemoryReducer } from './memory-reducer.js';

const MiB = 1024 * 1024;
const silent = createLogger({ level: 'silent', format: 'json' });

describe('MemoryReducer', () => {
  it('collects only when resident memory grew past the slack, at most once per gap, and measures from what stayed', () => {
    let rss = 80 * MiB;
    let now = 0;
    const runs: unknown[] = [];
    // A collection gives back all but 1 MiB of what was taken since the floor.
    const reducer = new MemoryReducer((o) => (runs.push(o), (rss = Math.min(rss, 81 * MiB))), silent, { rss: () => rss, now: () => now, slackBytes: 2 * MiB, minGapMs: 60_000 });
    now = 120_000;
    rss = 81.5 * MiB;
    expect(reducer.check()).toBe(false); // within the slack
    rss = 90 * MiB;
    expect(reducer.check()).toBe(true);
    expect(runs).toEqual([{ type: 'major', execution: 'sync', flavor: 'last-resort' }]);
    expect(rss).toBe(81 * MiB);
    rss = 84 * MiB;
    now += 30_000;
    expect(reducer.check()).toBe(false); // too soon after the last
    now += 30_000;
    expect(reducer.check()).toBe(true);
    // What a collection cannot give back raises the floor: no collection every minute for it.
    const stuck = new MemoryReducer(() => undefined, silent, { rss: () => rss, now: () => now, slackBytes: 2 * MiB, minGapMs: 60_000 });
    rss = 100 * MiB;
    now += 120_000;
    expect(stuck.check()).toBe(true);
    now += 120_000;
    expect(stuck.check()).toBe(false);
    expect(stuck.reductions).toBe(1);
  });

  it("takes this process's gc from V8 and gives memory back with it", () => {
    const reducer = MemoryReducer.forThisProcess(silent, { slackBytes: 0, minGapMs: 0 });
    expect(reducer).toBeDefined();
    // Garbage that only a collection frees.
    let junk: unknown[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${String(i)}` }));
    expect(junk.length).toBe(200_000);
    junk = undefined;
    const before = process.memoryUsage().heapUsed;
    (reducer as MemoryReducer).check();
    expect(reducer?.reductions).toBe(1);
    expect(process.memoryUsage().heapUsed).toBeLessThan(before);
  });
});
