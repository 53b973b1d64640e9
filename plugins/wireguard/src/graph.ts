import type { MeshPlan } from './planner.js';

const q = (s: string) => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;

/** How long ago, for an edge label: `12s`, `4m`, `2h`, `never`. */
export function age(seconds: number | undefined): string {
  if (seconds === undefined) return 'never';
  if (seconds < 120) return `${String(Math.max(0, Math.round(seconds)))}s`;
  if (seconds < 7200) return `${String(Math.round(seconds / 60))}m`;
  return `${String(Math.round(seconds / 3600))}h`;
}

/**
 * The mesh as Graphviz DOT: locations as clusters, leaders drawn bold and marked, nodes that are not Ready in red,
 * WireGuard tunnels as solid edges and underlay hops to a leader as dashed ones. Edges of this node are labelled
 * with the age of their latest handshake (`handshakes` by peer name, seconds; absent: never).
 */
export function meshDot(plan: MeshPlan, handshakes: Readonly<Record<string, number | undefined>>): string {
  const lines = [
    'graph weft {',
    `  label=${q(`weft WireGuard mesh (granularity ${plan.granularity}), seen from ${plan.self}`)};`,
    '  labelloc=t;',
    '  node [shape=box, style=rounded, fontname="Helvetica"];',
    '  edge [fontname="Helvetica", fontsize=10];',
  ];
  const byLocation = new Map<string, typeof plan.nodes>();
  for (const n of plan.nodes) byLocation.set(n.location, [...(byLocation.get(n.location) ?? []), n]);
  for (const [i, [loc, members]] of [...byLocation].sort(([a], [b]) => (a < b ? -1 : 1)).entries()) {
    lines.push(`  subgraph ${q(`cluster_${String(i)}`)} {`, `    label=${q(loc === '' ? '(no location)' : loc)};`);
    for (const n of members) {
      const label = [n.name, ...(n.leader ? ['leader'] : []), ...(n.overlay4 ? [n.overlay4] : []), ...(n.endpoint ? [n.endpoint] : [])].join('\\n');
      const attrs = [`label="${label.replaceAll('"', '\\"')}"`, ...(n.leader ? ['penwidth=2.5'] : []), ...(!n.ready ? ['color=red', 'fontcolor=red'] : []), ...(n.name === plan.self ? ['style="rounded,filled"', 'fillcolor="#eef5ff"'] : [])];
      lines.push(`    ${q(n.name)} [${attrs.join(', ')}];`);
    }
    lines.push('  }');
  }
  for (const e of plan.externals) lines.push(`  ${q(`external:${e}`)} [label=${q(`${e}\n(external)`)}, shape=ellipse];`);

  const label = (a: string, b: string) => {
    const other = a === plan.self ? b : b === plan.self ? a : undefined;
    if (other === undefined) return '';
    const name = other.startsWith('external:') ? other.slice('external:'.length) : other;
    return `label=${q(age(handshakes[name]))}`;
  };
  const edge = (a: string, b: string, underlay = false) => {
    const attrs = underlay ? ['style=dashed'] : [label(a, b)].filter((x) => x !== '');
    lines.push(`  ${q(a)} -- ${q(b)}${attrs.length > 0 ? ` [${attrs.join(', ')}]` : ''};`);
  };
  // Leaders (every node of a full mesh) reach each other through the mesh; the others reach theirs over the underlay.
  const leaders = plan.segments.map((seg) => seg.leader).sort();
  for (const seg of plan.segments) for (const m of seg.members) if (m !== seg.leader) edge(m, seg.leader, true);
  for (const [i, a] of leaders.entries()) for (const b of leaders.slice(i + 1)) edge(a, b);
  for (const e of plan.externals) for (const l of leaders) edge(l, `external:${e}`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
