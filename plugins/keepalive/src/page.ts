/**
 * The keepalive page, served by the agent at `/api/keepalive/`: everything inline (no CDN, no external file). It
 * fetches `matrix` (relative to itself) every few seconds and draws, per plane, the latency matrix as a heat map
 * (rows probe columns; a failed pair is a red cross) and a node graph whose failing edges are red and thick.
 */
export function keepalivePage(refreshMs: number): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>weft keepalive</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #fafbfc; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  #state { font-weight: 600; }
  #state.ok { color: #1a7f37; } #state.bad { color: #cf222e; }
  .muted { color: #6e7781; }
  .plane { display: inline-block; vertical-align: top; margin: 1rem 2rem 1rem 0; }
  h2 { font-size: 1rem; margin: .3rem 0; }
  table.heat { border-collapse: collapse; }
  table.heat th, table.heat td { border: 1px solid #d0d7de; padding: 3px 6px; text-align: center; min-width: 3.2rem; font-variant-numeric: tabular-nums; }
  table.heat th { background: #f0f3f6; font-weight: 600; }
  td.self { background: #eaeef2; color: #8c959f; }
  td.none { color: #8c959f; }
  td.fail { background: #cf222e; color: #fff; font-weight: 700; }
  #graph { border: 1px solid #d0d7de; background: #fff; }
  #missing, #diag { margin: .5rem 0; }
  .legend span { display: inline-block; width: 1rem; height: .8rem; vertical-align: middle; margin: 0 .2rem 0 .8rem; }
</style>
</head>
<body>
<h1>weft keepalive <span id="state" class="muted">loading…</span></h1>
<div class="muted">Rows probe columns. Latency of the latest probe; a red cross is a pair that does not answer. Refreshes every ${String(Math.round(refreshMs / 1000))} s. <span id="updated"></span>
  <span class="legend"><span style="background:hsl(120,60%,80%)"></span>fast<span style="background:hsl(0,70%,80%)"></span>slow<span style="background:#cf222e"></span>failing</span></div>
<div id="missing"></div>
<div id="diag"></div>
<div id="planes"></div>
<h2>Nodes</h2>
<svg id="graph" width="520" height="420" role="img" aria-label="node graph"></svg>
<script>
"use strict";
const REFRESH = ${String(refreshMs)};
const el = (tag, attrs, text) => { const e = document.createElement(tag); for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; };
const svgEl = (tag, attrs) => { const e = document.createElementNS('http://www.w3.org/2000/svg', tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v)); return e; };
// Latency to a colour: green at 1 ms or less, red at 1 s or more, on a log scale.
const heat = (ms) => { const x = Math.min(1, Math.max(0, Math.log10(Math.max(ms, 1)) / 3)); return 'hsl(' + Math.round(120 - 120 * x) + ',65%,' + Math.round(82 - 6 * x) + '%)'; };

function render(m) {
  const failing = m.cells.filter((c) => !c.up);
  const state = document.getElementById('state');
  const healthy = failing.length === 0 && m.missing.length === 0;
  state.textContent = healthy ? 'healthy — ' + m.nodes.length + ' nodes, ' + m.cells.length + ' probes' : failing.length + ' failing pair(s)' + (m.missing.length ? ', ' + m.missing.length + ' node(s) not answering' : '');
  state.className = healthy ? 'ok' : 'bad';
  document.getElementById('updated').textContent = 'Updated ' + new Date(m.generatedAt).toLocaleTimeString() + '.';
  const missing = document.getElementById('missing');
  missing.replaceChildren(...m.missing.map((x) => el('div', { class: 'muted' }, 'No status from ' + x.node + ': ' + x.error)));
  const diag = document.getElementById('diag');
  diag.replaceChildren(...m.diagnosis.map((d) => el('div', {}, d.source + ' → ' + d.target + ': ' + d.text)));

  const planes = document.getElementById('planes');
  planes.replaceChildren();
  for (const plane of m.planes) {
    const box = el('div', { class: 'plane', 'data-plane': plane });
    box.append(el('h2', {}, plane));
    const table = el('table', { class: 'heat' });
    const head = el('tr');
    head.append(el('th', {}, 'from \\\\ to'));
    for (const t of m.nodes) head.append(el('th', {}, t));
    table.append(head);
    for (const s of m.nodes) {
      const row = el('tr');
      row.append(el('th', {}, s));
      for (const t of m.nodes) {
        const c = m.cells.find((x) => x.source === s && x.target === t && x.plane === plane);
        let td;
        if (s === t) td = el('td', { class: 'self' }, '—');
        else if (!c) td = el('td', { class: 'none', title: 'not probed' }, '·');
        else if (!c.up) td = el('td', { class: 'fail', title: (c.result || 'failed') + (c.error ? ': ' + c.error : ''), 'data-pair': s + '>' + t }, '✗');
        else {
          td = el('td', { title: c.rttMs + ' ms' + (c.udpLoss !== undefined ? ', UDP loss ' + Math.round(c.udpLoss * 100) + ' %' : ''), 'data-pair': s + '>' + t }, c.rttMs < 10 ? c.rttMs.toFixed(1) : String(Math.round(c.rttMs)));
          td.style.background = heat(c.rttMs);
        }
        row.append(td);
      }
      table.append(row);
    }
    box.append(table);
    planes.append(box);
  }

  // The graph: nodes on a circle; an edge per pair probed either way, red and thick when any plane fails.
  const g = document.getElementById('graph');
  g.replaceChildren();
  const n = m.nodes.length, cx = 260, cy = 210, r = Math.min(170, 40 + n * 18);
  const pos = new Map(m.nodes.map((name, i) => [name, [cx + r * Math.cos(2 * Math.PI * i / n - Math.PI / 2), cy + r * Math.sin(2 * Math.PI * i / n - Math.PI / 2)]]));
  const pairs = new Map();
  for (const c of m.cells) {
    const key = [c.source, c.target].sort().join('|');
    const p = pairs.get(key) || { up: true, rtt: [] };
    p.up = p.up && c.up; if (c.up) p.rtt.push(c.rttMs);
    pairs.set(key, p);
  }
  for (const [key, p] of pairs) {
    const [a, b] = key.split('|'); const [x1, y1] = pos.get(a) || [0, 0]; const [x2, y2] = pos.get(b) || [0, 0];
    const line = svgEl('line', { x1, y1, x2, y2, stroke: p.up ? '#8fd19e' : '#cf222e', 'stroke-width': p.up ? 2 : 5, 'data-edge': key, class: p.up ? 'edge up' : 'edge failing' });
    const title = svgEl('title', {}); title.textContent = a + ' ↔ ' + b + (p.up ? ' ' + Math.max(...p.rtt).toFixed(1) + ' ms' : ' failing'); line.append(title);
    g.append(line);
  }
  const down = new Set(m.missing.map((x) => x.node));
  for (const [name, [x, y]] of pos) {
    g.append(svgEl('circle', { cx: x, cy: y, r: 20, fill: down.has(name) ? '#ffebe9' : '#ddf4ff', stroke: down.has(name) ? '#cf222e' : '#0969da', 'stroke-width': 2 }));
    const t = svgEl('text', { x, y: y + 4, 'text-anchor': 'middle', 'font-size': 12 }); t.textContent = name; g.append(t);
  }
}

async function refresh() {
  try {
    const res = await fetch('matrix', { cache: 'no-store' });
    render(await res.json());
  } catch (e) {
    const state = document.getElementById('state');
    state.textContent = 'cannot load the matrix: ' + e; state.className = 'bad';
  }
}
refresh();
setInterval(refresh, REFRESH);
</script>
</body>
</html>
`;
}
