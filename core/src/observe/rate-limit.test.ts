import { describe, expect, it } from 'vitest';
import { RateLimiter, TokenBucket } from './rate-limit.js';

describe('TokenBucket', () => {
  it('gives the burst at once, then the rate, on the clock it is given', () => {
    let now = 0;
    const b = new TokenBucket(10, 3, () => now);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
    now += 99;
    expect(b.take()).toBe(false);
    now += 1; // 100 ms at 10/s: one token
    expect([b.take(), b.take()]).toEqual([true, false]);
    now += 10_000; // saved up: never more than the burst
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
  });
});

describe('RateLimiter', () => {
  it("refuses a client over its own rate without touching another's, and everyone over the total", () => {
    let now = 0;
    const r = new RateLimiter({ perClient: 1, burst: 2, total: 3 }, () => now);
    expect([r.admit('a'), r.admit('a'), r.admit('a')]).toEqual(['ok', 'ok', 'client']);
    expect(r.admit('b')).toBe('ok');
    expect(r.admit('c')).toBe('total'); // 3 served: the total's burst is spent
    now += 1000;
    expect(r.admit('c')).toBe('ok');
  });

  it('keeps at most 4096 clients; beyond, new addresses share one bucket, and quiet ones are forgotten', () => {
    let now = 0;
    const r = new RateLimiter({ perClient: 1, burst: 1, total: 1e9 }, () => now);
    for (let i = 0; i < 5000; i++) r.admit(`10.0.${i >> 8}.${i & 255}`);
    expect(r.tracked).toBe(4096);
    // The shared bucket was spent by the first newcomer: the others are refused.
    expect(r.admit('192.0.2.1')).toBe('client');
    now += 2000; // everyone's bucket is full again: the next newcomer clears the quiet ones
    expect(r.admit('192.0.2.2')).toBe('ok');
    expect(r.tracked).toBe(1);
  });
});
