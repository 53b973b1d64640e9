import { describe, expect, it } from 'vitest';
import { canonicalIP, networkOf, parsePrefix } from './ip.js';

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
