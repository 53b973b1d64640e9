import { bigIntToIp, ipToBigInt, networkContains, parseNetwork } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { beats, candidateOffsets, chooseOverlay, claimKey, noteClaims, parseLedger, winners } from './overlay.js';

const base = { overlayCIDR: '100.64.0.0/10', overlayCIDR6: 'fd77:6566:7400::/64', now: 5000 };

describe('overlay addresses', () => {
  it('first start: derived from the name, the same every time, inside the range, never its first or last address', () => {
    const a = chooseOverlay({ ...base, self: 'n1', held: undefined, others: [] });
    const b = chooseOverlay({ ...base, self: 'n1', held: undefined, others: [] });
    expect(a).toEqual(b);
    expect(a.reason).toBe('first start');
    expect(a.since).toBe(5000);
    expect(networkContains(parseNetwork('100.64.0.0/10')!, a.ip4)).toBe(true);
    // The IPv6 address sits at the same offset.
    const off = ipToBigInt(a.ip4)!.value - ipToBigInt('100.64.0.0')!.value;
    expect(a.ip6).toBe(bigIntToIp(ipToBigInt('fd77:6566:7400::')!.value + off, 6));
    const gen = candidateOffsets('x', 4n);
    for (let i = 0; i < 50; i++) expect([1n, 2n]).toContain(gen.next().value);
  });

  it('keeps what it holds across restarts', () => {
    const held = { ip4: '100.64.7.7', since: 100 };
    expect(chooseOverlay({ ...base, self: 'n1', held, others: [{ node: 'n2', ip4: '100.64.8.8', since: 50 }] })).toEqual({ ip4: '100.64.7.7', ip6: 'fd77:6566:7400::707', since: 100 });
  });

  it('a collision: the older claim keeps the address, the newer moves to a free one; both sides agree', () => {
    const held = { ip4: '100.64.7.7', since: 100 };
    const older = { node: 'n9', ip4: '100.64.7.7', since: 90 };
    const moved = chooseOverlay({ ...base, self: 'n1', held, others: [older] });
    expect(moved.ip4).not.toBe('100.64.7.7');
    expect(moved.reason).toBe('100.64.7.7 is also claimed by n9, whose claim is older');
    // The winner, applying the same rule, keeps it.
    expect(chooseOverlay({ ...base, self: 'n9', held: { ip4: '100.64.7.7', since: 90 }, others: [{ node: 'n1', ip4: '100.64.7.7', since: 100 }] }).reason).toBeUndefined();
  });

  it('equal claim times: neither keeps the address (never the name that sorts first); both move', () => {
    expect(beats({ node: 'a', ip4: 'x', since: 1 }, { node: 'b', ip4: 'x', since: 1 })).toBe(false);
    expect(winners([{ node: 'b', ip4: 'x', since: 1 }, { node: 'a', ip4: 'x', since: 1 }, { node: 'c', ip4: 'y', since: 1 }])).toEqual(new Map([['y', 'c']]));
    // A third, later claim does not make the address anyone's.
    expect(winners([{ node: 'a', ip4: 'x', since: 1 }, { node: 'b', ip4: 'x', since: 1 }, { node: 'c', ip4: 'x', since: 5 }])).toEqual(new Map());
    for (const [self, other] of [['a', 'b'], ['b', 'a']] as const) {
      const c = chooseOverlay({ ...base, self, held: { ip4: '100.64.7.7', since: 10 }, others: [{ node: other, ip4: '100.64.7.7', since: 10 }] });
      expect(c.ip4).not.toBe('100.64.7.7');
      expect(c.reason).toBe(`100.64.7.7 is also claimed by ${other}, as old as this node's claim: neither keeps it`);
    }
  });

  it("another node's claim is dated when this node first saw it, not by its own word; the ledger survives a restart", () => {
    const ledger = parseLedger(undefined);
    // n2 has claimed 100.64.7.7 for long; this node saw it at t=100.
    expect(noteClaims(ledger, [{ node: 'n2', ip4: '100.64.7.7' }], 100)).toBe(true);
    expect(noteClaims(ledger, [{ node: 'n2', ip4: '100.64.7.7' }], 200)).toBe(false);
    // At t=900 a newcomer claims the same address and publishes `since: 0`: it is dated 900 here all the same.
    noteClaims(ledger, [{ node: 'n2', ip4: '100.64.7.7' }, { node: 'evil', ip4: '100.64.7.7' }], 900);
    expect(ledger.get(claimKey('evil', '100.64.7.7'))).toBe(900);
    const claims = [...ledger].map(([key, since]) => ({ node: key.split(' ')[0] as string, ip4: key.split(' ')[1] as string, since }));
    expect(winners(claims)).toEqual(new Map([['100.64.7.7', 'n2']]));
    // Persisted as JSON and read back; junk entries are dropped, and a claim no longer made is forgotten.
    const back = parseLedger(JSON.stringify({ ...Object.fromEntries(ledger), junk: 'x', 'n3 100.64.1.1': 'soon' }));
    expect(back).toEqual(ledger);
    expect(noteClaims(back, [{ node: 'n2', ip4: '100.64.7.7' }], 1000)).toBe(true);
    expect([...back.keys()]).toEqual([claimKey('n2', '100.64.7.7')]);
    expect(parseLedger('not json')).toEqual(new Map());
  });

  it('never picks an address another node claims, and says when the range is full', () => {
    const first = chooseOverlay({ ...base, self: 'n1', held: undefined, others: [] });
    const next = chooseOverlay({ ...base, self: 'n1', held: undefined, others: [{ node: 'n2', ip4: first.ip4, since: 1 }] });
    expect(next.ip4).not.toBe(first.ip4);
    const small = { overlayCIDR: '100.64.0.0/30', overlayCIDR6: 'fd00::/96', now: 1 };
    const taken = [{ node: 'a', ip4: '100.64.0.1', since: 1 }, { node: 'b', ip4: '100.64.0.2', since: 1 }];
    expect(() => chooseOverlay({ ...small, self: 'c', held: undefined, others: taken })).toThrow('no free overlay address in 100.64.0.0/30 for c (2 claimed)');
  });

  it('a range that changed: chooses again inside the new one', () => {
    const c = chooseOverlay({ ...base, overlayCIDR: '100.100.0.0/16', self: 'n1', held: { ip4: '100.64.7.7', since: 1 }, others: [] });
    expect(c.reason).toBe('100.64.7.7 is outside 100.100.0.0/16');
    expect(c.ip4.startsWith('100.100.')).toBe(true);
  });
});
