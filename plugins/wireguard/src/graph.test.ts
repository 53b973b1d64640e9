import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { age, meshDot } from './graph.js';
import type { MeshPlan } from './planner.js';

const node = (name: string, location: string, leader = false, ready = true) => ({ name, location, leader, ready, overlay4: `100.64.0.${name.slice(1)}`, endpoint: `192.0.2.${name.slice(1)}:51820`, publicKey: 'k', networks: [] });
const plan = (over: Partial<MeshPlan>): MeshPlan => ({
  granularity: 'location',
  self: 'n1',
  location: 'a',
  isLeader: true,
  leaders: { a: 'n1', b: 'n3' },
  segments: [
    { location: 'a', leader: 'n1', members: ['n1', 'n2'] },
    { location: 'b', leader: 'n3', members: ['n3', 'n4'] },
  ],
  peers: [],
  routes: [],
  addresses: [],
  excluded: [],
  refused: [],
  nodes: [node('n1', 'a', true), node('n2', 'a'), node('n3', 'b', true, false), node('n4', 'b')],
  externals: ['laptop'],
  discovered: {},
  ...over,
});

// A plugin's tests cannot reach the repository's test/support; the wording matches its skip notes (tools/programs.mjs).
const hasDot = spawnSync('dot', ['-V']).status === 0;
const noDot = hasDot ? undefined : 'missing dot (graphviz): apt-get install graphviz';
if (noDot && process.env.WEFT_E2E_REQUIRED === '1') throw new Error(`WEFT_E2E_REQUIRED=1 but the Graphviz check cannot run: ${noDot}`);

describe('the mesh as Graphviz DOT', () => {
  it('locations as clusters, leaders bold, a node that is not Ready in red, underlay hops dashed, handshake ages on own edges', () => {
    const dot = meshDot(plan({}), { n3: 42, laptop: undefined });
    expect(dot).toContain('subgraph "cluster_0" {\n    label="a";');
    expect(dot).toContain('"n1" [label="n1\\nleader\\n100.64.0.1\\n192.0.2.1:51820", penwidth=2.5, style="rounded,filled", fillcolor="#eef5ff"];');
    expect(dot).toContain('"n3" [label="n3\\nleader\\n100.64.0.3\\n192.0.2.3:51820", penwidth=2.5, color=red, fontcolor=red];');
    expect(dot).toContain('"n2" -- "n1" [style=dashed];');
    expect(dot).toContain('"n4" -- "n3" [style=dashed];');
    expect(dot).toContain('"n1" -- "n3" [label="42s"];');
    expect(dot).toContain('"n1" -- "external:laptop" [label="never"];');
    expect(dot).toContain('"n3" -- "external:laptop";');
  });

  it('full: an edge per pair; quotes in names are escaped', () => {
    const segments = [{ location: '', leader: 'n1', members: ['n1'] }, { location: 'we"ird', leader: 'n2', members: ['n2'] }];
    const dot = meshDot(plan({ granularity: 'full', leaders: {}, segments, externals: [], nodes: [node('n1', ''), node('n2', 'we"ird')] }), {});
    expect(dot).toContain('label="(no location)"');
    expect(dot).toContain('label="we\\"ird"');
    expect(dot.match(/ -- /g)).toHaveLength(1);
  });

  it('ages read as people read them', () => {
    expect([age(undefined), age(3), age(119), age(600), age(10_000)]).toEqual(['never', '3s', '119s', '10m', '3h']);
  });

  it.skipIf(noDot)(`Graphviz renders it without a warning${noDot ? ` (SKIPPED: ${noDot})` : ''}`, () => {
    for (const p of [plan({}), plan({ granularity: 'full' })]) {
      const r = spawnSync('dot', ['-Tsvg'], { input: meshDot(p, { n3: 5 }), encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('<svg');
    }
  });
});
