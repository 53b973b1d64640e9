import { describe, expect, it } from 'vitest';
import { MeshOverlay } from './overlay-service.js';
import type { MeshPlan } from './planner.js';

const RANGES = ['100.64.0.0/10', 'fd77:6566:7400::/64'];
/** The part of a plan the overlay reads: self's addresses, and every node's networks. */
const plan = (nodes: Record<string, string[]>): MeshPlan =>
  ({ self: 'n1', addresses: ['100.64.0.1/32', 'fd77:6566:7400::1/128'], nodes: Object.entries(nodes).map(([name, networks]) => ({ name, networks })) }) as unknown as MeshPlan;

describe('the mesh as an overlay service', () => {
  it("gives each planned node's overlay addresses (one-address networks inside the overlay ranges), and this node's", () => {
    const o = new MeshOverlay('weft-wg0', RANGES);
    expect(o.self()).toBeUndefined();
    o.update(plan({ n1: [], n2: ['100.64.0.2/32', 'fd77:6566:7400::2/128', '198.19.2.0/24'], n3: ['198.19.3.0/24', '100.64.9.0/24'] }));
    expect(o.interface).toBe('weft-wg0');
    expect(o.self()).toEqual({ ip4: '100.64.0.1', ip6: 'fd77:6566:7400::1' });
    expect(o.node('n2')).toEqual({ ip4: '100.64.0.2', ip6: 'fd77:6566:7400::2' });
    // A pod CIDR, or a wider network inside the range, is no overlay address; a node the plan left out has none.
    expect(o.node('n3')).toBeUndefined();
    expect(o.node('n9')).toBeUndefined();
  });

  it('tells its listeners of a change only; the same plan object again costs nothing', () => {
    const o = new MeshOverlay('weft-wg0', RANGES);
    let heard = 0;
    const off = o.onChange(() => heard++);
    const p = plan({ n2: ['100.64.0.2/32'] });
    o.update(p);
    o.update(p);
    o.update(plan({ n2: ['100.64.0.2/32'] }));
    expect(heard).toBe(1);
    o.update(plan({ n2: ['100.64.0.7/32'] }));
    expect(heard).toBe(2);
    expect(o.node('n2')).toEqual({ ip4: '100.64.0.7' });
    off();
    o.update(plan({}));
    expect(heard).toBe(2);
    expect(o.node('n2')).toBeUndefined();
  });
});
