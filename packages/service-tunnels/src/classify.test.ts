import { describe, expect, it } from 'vitest';
import { allocateSlots, classificationTable, jhashSeed, markLayout, markText } from './classify.js';
import { maglevTable } from './maglev.js';
import type { TunnelService } from './services.js';

const service = (addresses: string[], state: 'active' | 'draining' = 'active'): TunnelService => ({
  namespace: 'web',
  name: 'front',
  uid: 'u1',
  vips: ['203.0.113.80'],
  affinity: 'flow',
  endpoints: addresses.map((address) => ({ address, family: 4, nodeName: 'n3', state })),
  ignored: [],
});

describe('the shared classification', () => {
  it('slots: kept across plans, the lowest free one for a newcomer, freed when the endpoint goes', () => {
    const a = allocateSlots([service(['198.19.3.10', '198.19.3.11'])], new Map(), { slots: 15, now: 0, drainTimeoutMs: 1000 });
    const b = allocateSlots([service(['198.19.3.11', '198.19.3.12'])], a.slots, { slots: 15, now: 1, drainTimeoutMs: 1000 });
    expect([...b.slots].map(([k, v]) => [k, v.slot])).toEqual([['198.19.3.11', 2], ['198.19.3.12', 1]]);
    const d = allocateSlots([service(['198.19.3.11'], 'draining')], b.slots, { slots: 15, now: 5, drainTimeoutMs: 1000 });
    expect(d.states.get('198.19.3.11')).toBe('draining');
    expect(allocateSlots([service(['198.19.3.11'], 'draining')], d.slots, { slots: 15, now: 1005, drainTimeoutMs: 1000 }).states.get('198.19.3.11')).toBe('drained');
  });

  it('the nft table: a chain per VIP (pinned flows first, then the bucket map), the marks of live slots, a counter per endpoint, nothing in through send-only devices', () => {
    const layout = markLayout(0x00ff0000);
    expect(layout).toEqual({ shift: 16, slots: 255, mask: 0x00ff0000 });
    const table = maglevTable(['198.19.3.10', '198.19.3.11'], 'seed', 251);
    const t = classificationTable(
      'weft-x',
      [{ vip: '203.0.113.80', family: 4, affinity: 'client', jhashSeed: jhashSeed('seed'), table, endpoints: [{ address: '198.19.3.10', state: 'active', slot: 1 }, { address: '198.19.3.11', state: 'drained', slot: 2 }] }],
      { mask: layout.mask, mark: (a) => (a === '198.19.3.10' ? 1 : 2) << 16, pins: { size: 1024, timeoutMs: 60_000 }, sendOnly: ['wx0'] },
    );
    expect(t.name).toBe('weft-x');
    expect(t.body).toContain('iifname { "wx0" } drop');
    expect(t.body).toContain(`meta mark set jhash ip saddr mod 251 seed 0x${jhashSeed('seed').toString(16)} map @b0 add @flows4`);
    expect(t.elements?.live).toEqual([markText(1 << 16)]);
    expect(t.counters).toEqual(['e1']);
    expect(t.elements?.b0).toHaveLength(251);
  });
});
