import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Lab } from '../core/src/lab/index.js';
import { httpGet } from '../core/src/observe/http-get.js';
import { netnsSkipReason, skipNote } from './support/capabilities.js';
import { labNames } from './support/labs.js';
import './support/builtins.js';
import { until } from './support/until.js';

// The monitoring component (manifests/components/monitoring): every query of the Grafana dashboard and every alert
// parses as PromQL, and every metric they read is one a running agent exports — in the DaemonSet's plugin set
// (wireguard + keepalive), read off its /metrics in the lab. A renamed metric fails here, not on a dark dashboard.
const repo = fileURLToPath(new URL('../', import.meta.url));
const dir = join(repo, 'manifests/components/monitoring');
const dashboard = JSON.parse(readFileSync(join(dir, 'dashboard.json'), 'utf8')) as unknown;
const rule = parse(readFileSync(join(dir, 'prometheusrule.yaml'), 'utf8')) as { spec: { groups: { rules: { alert: string; expr: string; annotations: { runbook: string } }[] }[] } };
const alerts = rule.spec.groups.flatMap((g) => g.rules);

/** Every PromQL query of the dashboard (panels' targets, and the metric of a `label_values(metric, label)` variable), with where it is. */
function dashboardQueries(value: unknown, where: string, out: { where: string; expr: string }[] = []): { where: string; expr: string }[] {
  if (Array.isArray(value)) value.forEach((v, i) => dashboardQueries(v, `${where}[${String(i)}]`, out));
  else if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const title = typeof o.title === 'string' ? ` "${o.title}"` : '';
    if (typeof o.expr === 'string') out.push({ where: `${where}${title}`, expr: o.expr });
    if (typeof o.definition === 'string') {
      const m = /^label_values\((.+),\s*\w+\)$/.exec(o.definition);
      out.push({ where: `${where} variable ${String(o.name)}`, expr: m ? (m[1] as string) : o.definition });
    }
    for (const [k, v] of Object.entries(o)) if (k !== 'expr' && k !== 'definition') dashboardQueries(v, `${where}${title}.${k}`, out);
  }
  return out;
}

const queries = [...dashboardQueries(dashboard, 'dashboard'), ...alerts.map((a) => ({ where: `alert ${a.alert}`, expr: a.expr }))];

/** The metrics a query reads, or its syntax errors (Grafana's variables replaced as Grafana would). */
function metricsOf(expr: string): { metrics: string[]; errors: number[] } {
  const text = expr.replaceAll('$__rate_interval', '5m').replaceAll('$__interval', '1m');
  const metrics: string[] = [];
  const errors: number[] = [];
  parser.parse(text).iterate({
    enter: (node) => {
      if (node.type.isError) errors.push(node.from);
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') metrics.push(text.slice(node.from, node.to));
    },
  });
  return { metrics, errors };
}

describe('the dashboard and the alerts, as text', () => {
  it('hold queries, each valid PromQL that reads at least one metric', () => {
    expect(queries.length).toBeGreaterThan(20);
    const bad = queries.map((q) => ({ ...q, ...metricsOf(q.expr) })).filter((q) => q.errors.length > 0 || q.metrics.length === 0);
    expect(bad.map((q) => `${q.where}: ${q.expr}`)).toEqual([]);
  });

  it('every alert has a runbook section in docs/operations.md', () => {
    const operations = readFileSync(join(repo, 'docs/operations.md'), 'utf8');
    const anchors = new Set([...operations.matchAll(/^#+ (.+)$/gm)].map((m) => (m[1] as string).toLowerCase().replace(/[^a-z0-9 -]/g, '').replaceAll(' ', '-')));
    for (const a of alerts) {
      expect(a.annotations.runbook, a.alert).toBe(`docs/operations.md#${a.alert.toLowerCase()}`);
      expect(anchors, a.alert).toContain(a.alert.toLowerCase());
    }
  });
});

const skip = await netnsSkipReason();
const labName = labNames();

describe.skipIf(skip)(`the metrics they read, against a running agent${skipNote(skip)}`, () => {
  it("are all on the /metrics of an agent running the DaemonSet's plugins", async () => {
    const lab = await Lab.up({ name: labName('mon'), nodes: 2, timeoutMs: 60_000 });
    try {
      await until('the lab converged', async () => (await lab.waitConverged(20_000)).converged, 60_000);
      // Probes have run and WireGuard has peers: labelled metrics have series, not only their # TYPE line.
      await new Promise((r) => setTimeout(r, 3_000));
      const text = (await httpGet({ socket: join(lab.dir, 'n1', 'http.sock') }, '/metrics', 5_000)).body;
      const exported = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]));
      expect(exported.get('weft_probe_up')).toBe('gauge');
      expect(exported.get('weft_wireguard_peer_last_handshake_seconds')).toBe('gauge');
      const known = (name: string): boolean => {
        if (name === 'up') return true; // Prometheus's own, one per scrape target
        if (exported.has(name)) return true;
        const base = /^(.+)_(bucket|sum|count)$/.exec(name)?.[1];
        return base !== undefined && (exported.get(base) === 'histogram' || exported.get(base) === 'summary');
      };
      const unknown = queries.flatMap((q) => metricsOf(q.expr).metrics.filter((m) => !known(m)).map((m) => `${q.where}: ${m}`));
      expect(unknown).toEqual([]);
    } finally {
      await lab.down();
    }
  }, 180_000);
});
