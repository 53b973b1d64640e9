import { describe, expect, it } from 'vitest';
import { parseFibTrie, parseIfInet6 } from './netns.js';

describe("reading a namespace's addresses from /proc without entering it", () => {
  it('fib_trie: the /32 host LOCAL leaves, not loopback, not broadcast or routes', () => {
    const text = [
      'Main:',
      '  +-- 0.0.0.0/0 3 0 5',
      '     +-- 127.0.0.0/8 2 0 2',
      '           |-- 127.0.0.1',
      '              /32 host LOCAL',
      '     +-- 198.19.1.0/24 2 0 2',
      '        |-- 198.19.1.0',
      '           /24 link UNICAST',
      '        |-- 198.19.1.10',
      '           /32 host LOCAL',
      '        |-- 198.19.1.255',
      '           /32 link BROADCAST',
      'Local:',
      '        |-- 198.19.1.10',
      '           /32 host LOCAL',
    ].join('\n');
    expect(parseFibTrie(text)).toEqual(['198.19.1.10']);
  });

  it('if_inet6: global and ULA addresses, not loopback or link-local', () => {
    const text = ['fe8000000000000000fc00fffe000001 04 40 20 80     eth0', '00000000000000000000000000000001 01 80 10 80       lo', 'fd190000000000000000000000010010 04 40 00 80     eth0'].join('\n');
    expect(parseIfInet6(text)).toEqual(['fd19::1:10']);
  });
});
