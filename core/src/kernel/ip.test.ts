import { describe, expect, it } from 'vitest';
import { addressAt, bigIntToIp, canonicalIP, canonicalNetwork, hostNetwork, ipToBigInt, joinHostPort, networkContains, networkOf, networkSize, networksOverlap, offsetOf, parseNetwork, parsePrefix } from './ip.js';

describe('ip helpers', () => {
  it.each([
    ['192.0.2.7/24', '192.0.2.0/24'],
    ['192.0.2.7/32', '192.0.2.7/32'],
    ['192.0.2.7/0', '0.0.0.0/0'],
    ['255.255.255.255/1', '128.0.0.0/1'],
    ['198.19.255.1/15', '198.18.0.0/15'],
    ['2001:db8::7/64', '2001:db8::/64'],
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128'],
    ['fd00::1/8', 'fd00::/8'],
  ])('network of %s is %s', (text, net) => {
    expect(networkOf(parsePrefix(text) as NonNullable<ReturnType<typeof parsePrefix>>)).toBe(net);
  });

  it.each([
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
    ['192.0.2.1', '192.0.2.1'],
    ['1.2.3', undefined],
  ])('canonical %s is %s', (text, canonical) => {
    expect(canonicalIP(text)).toBe(canonical);
  });

  it('refuses malformed prefixes', () => {
    for (const bad of ['192.0.2.0/33', '192.0.2.0/', '192.0.2.0/x', 'fd00::/129', 'nope/8']) expect(parsePrefix(bad)).toBeUndefined();
  });
});

describe('network arithmetic for plugins', () => {
  it('canonical forms', () => {
    expect(canonicalIP('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(canonicalIP('fd00:0:0:1:0:0:0:0')).toBe('fd00:0:0:1::');
    expect(canonicalIP('::ffff:192.0.2.1')).toBe('::ffff:c000:201');
    expect(canonicalIP('192.0.2.300')).toBeUndefined();
    expect([canonicalNetwork('198.19.3.77/26'), canonicalNetwork('2001:DB8:1::5/64'), canonicalNetwork('198.19.3.0')]).toEqual(['198.19.3.64/26', '2001:db8:1::/64', undefined]);
  });

  it('offsets, containment, overlap, sizes', () => {
    const v4 = parseNetwork('100.64.0.0/10');
    const v6 = parseNetwork('fd77:6566:7400::/64');
    if (!v4 || !v6) throw new Error('parse');
    expect(networkSize(v4)).toBe(4_194_304n);
    expect(addressAt(v4, 1799n)).toBe('100.64.7.7');
    expect(offsetOf(v4, '100.64.7.7')).toBe(1799n);
    expect(addressAt(v6, 1799n)).toBe('fd77:6566:7400::707');
    expect([networkContains(v4, '100.127.255.255'), networkContains(v4, '100.128.0.0'), networkContains(v4, 'fd77:6566:7400::1')]).toEqual([true, false, false]);
    const a = parseNetwork('198.18.0.0/23');
    const b = parseNetwork('198.18.1.128/25');
    const c = parseNetwork('198.18.2.0/24');
    if (!a || !b || !c) throw new Error('parse');
    expect([networksOverlap(a, b), networksOverlap(a, c), networksOverlap(a, v6)]).toEqual([true, false, false]);
    expect(bigIntToIp((ipToBigInt('192.0.2.255')?.value ?? 0n) + 1n, 4)).toBe('192.0.3.0');
    expect([hostNetwork('192.0.2.1'), hostNetwork('2001:db8::1'), joinHostPort('2001:db8::1', 51820), joinHostPort('192.0.2.1', 51820)]).toEqual(['192.0.2.1/32', '2001:db8::1/128', '[2001:db8::1]:51820', '192.0.2.1:51820']);
  });

  it('remembered parses: frozen results, the same answer every time, right across many more texts than it keeps', () => {
    const n = parseNetwork('198.18.1.7/24');
    expect(Object.isFrozen(n)).toBe(true);
    expect(parseNetwork('198.18.1.7/24')).toBe(n);
    // 40,000 distinct addresses (more than both generations hold), twice: every answer right each time.
    for (let round = 0; round < 2; round++) {
      for (let i = 1; i <= 40_000; i++) {
        const [hi, lo] = [((i >> 16) + 1).toString(16), (i & 0xffff || 0xabc).toString(16)];
        const text = `2001:DB8:1:${hi.toUpperCase()}:${lo.toUpperCase()}:1:1:1`;
        const want = `2001:db8:1:${hi}:${lo}:1:1:1`;
        if (canonicalIP(text) !== want) expect(canonicalIP(text)).toBe(want);
      }
    }
    expect(canonicalIP('1'.repeat(70))).toBeUndefined();
    expect(canonicalIP('not an address')).toBeUndefined();
    expect(canonicalIP('not an address')).toBeUndefined();
  });
});
