import { describe, expect, it } from 'vitest';
import type { ClusterView } from '../api/cluster.js';
import { StaticNodeSource } from './static-source.js';

const node = (name: string, extra: object = {}) => ({
  name,
  internalAddresses: ['192.0.2.1'],
  externalAddresses: [],
  podCIDRs: ['198.18.0.0/24'],
  labels: {},
  annotations: {},
  ready: true,
  ...extra,
});

describe('StaticNodeSource', () => {
  it('serves the declared nodes sorted, with self, location and a frozen snapshot', async () => {
    const source = new StaticNodeSource('b', [node('c'), node('b', { labels: { 'topology.kubernetes.io/region': 'eu' } }), node('a')]);
    await source.start(new Set(['nodes']), () => undefined);
    const view = source.current();
    expect(view.nodes.map((n) => n.name)).toEqual(['a', 'b', 'c']);
    expect(view.self).toMatchObject({ name: 'b', location: 'eu' });
    expect(Object.isFrozen(view.nodes)).toBe(true);
    expect(Object.isFrozen(view.self.annotations)).toBe(true);
    expect(source.synced()).toBe(true);
  });

  it('adds this node by name when the config does not list it', () => {
    const source = new StaticNodeSource('me', [node('other')]);
    expect(source.current().nodes.map((n) => n.name)).toEqual(['me', 'other']);
    expect(source.current().self).toMatchObject({ name: 'me', internalAddresses: [], ready: true });
  });

  it('publishes onto the own node: a new revision when something changed, none otherwise', async () => {
    const views: ClusterView[] = [];
    const source = new StaticNodeSource('a', [node('a')]);
    await source.start(new Set(['nodes']), (v) => views.push(v));
    await source.publish({ 'weft.io/location': 'lab-1', 'weft.io/key': 'k' });
    await source.publish({ 'weft.io/key': 'k' });
    await source.publish({ 'weft.io/key': null, 'weft.io/absent': null });
    expect(views.map((v) => v.revision)).toEqual([2, 3]);
    expect(views[0]?.self).toMatchObject({ annotations: { 'weft.io/location': 'lab-1', 'weft.io/key': 'k' }, location: 'lab-1' });
    expect(views[1]?.self.annotations).toEqual({ 'weft.io/location': 'lab-1' });
  });
});
