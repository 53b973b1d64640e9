import { parseNetwork } from '@weft/core';
import { describe, expect, it } from 'vitest';
import { isUnicastMAC, PodNetworks, vtepMAC } from './facts.js';
import { allocate } from './pool.js';

describe('the VTEP MAC', () => {
  it('is the same for a node and VNI on every call and process, locally administered and unicast; another VNI, another MAC', () => {
    expect(vtepMAC('n3', 1)).toBe('da:5a:f6:53:c0:ef'); // what n3's VTEP had in a lab, in another process
    const mac = vtepMAC('node-a', 1);
    expect(isUnicastMAC(mac)).toBe(true);
    expect(parseInt(mac.slice(0, 2), 16) & 0x02).toBe(0x02);
    expect(vtepMAC('node-a', 2)).not.toBe(mac);
    expect(vtepMAC('node-b', 1)).not.toBe(mac);
  });
});

describe('PodNetworks', () => {
  it('finds the network holding an address among networks of several lengths and both families', () => {
    const pods = new PodNetworks(['10.244.0.0/16', '198.19.3.0/24', 'fd19::/48', 'fd20::1:0/112']);
    expect(pods.find('10.244.7.9')).toBe('10.244.0.0/16');
    expect(pods.find('198.19.3.255')).toBe('198.19.3.0/24');
    expect(pods.find('198.19.4.1')).toBeUndefined();
    expect(pods.find('fd19:0:0:ffff::1')).toBe('fd19::/48');
    expect(pods.find('fd20::1:abcd')).toBe('fd20::1:0/112');
    expect(pods.find('fd20::2:1')).toBeUndefined();
    expect(pods.find('not an address')).toBeUndefined();
  });
});

describe('pool allocation', () => {
  const pool = parseNetwork('10.200.0.0/24') as NonNullable<ReturnType<typeof parseNetwork>>;
  const members = (n: number, age = (i: number) => i) => Array.from({ length: n }, (_, i) => ({ name: `n${String(i + 1)}`, createdAt: age(i) }));

  it('gives every member a distinct address of the pool, never the network or broadcast address', () => {
    const got = allocate(pool, members(200), 'seg');
    expect(got.size).toBe(200);
    expect(new Set(got.values()).size).toBe(200);
    for (const a of got.values()) expect(a).not.toMatch(/^10\.200\.0\.(0|255)$/);
  });

  it('is the same whatever the order of the members, and keeps existing members in place when a younger one joins', () => {
    const before = allocate(pool, members(50), 'seg');
    expect(allocate(pool, [...members(50)].reverse(), 'seg')).toEqual(before);
    const after = allocate(pool, [...members(50), { name: 'late', createdAt: 1e12 }], 'seg');
    for (const [name, address] of before) expect(after.get(name), name).toBe(address);
  });

  it('a pool smaller than its members leaves the last ones without an address; equal ages never decide by name', () => {
    const tiny = parseNetwork('10.200.0.0/30') as NonNullable<ReturnType<typeof parseNetwork>>;
    const got = allocate(tiny, members(5), 'seg');
    expect(got.size).toBe(2);
    // All equally old: a contested address goes to nobody in that round; the members still end up distinct.
    const same = allocate(pool, members(30, () => 7), 'seg');
    expect(new Set(same.values()).size).toBe(same.size);
    expect(same.size).toBe(30);
  });
});
