import type { Change } from '../kernel/model.js';
import type { WeftConfig } from '../config/load.js';
import type { Logger } from '../observe/logger.js';
import { Agent, type AgentOptions } from './agent.js';

/** What one plugin would change, or why it could not say. */
export interface PluginPlan {
  readonly plugin: string;
  readonly owns: boolean;
  readonly changes: readonly Change[];
  readonly error?: string;
}

/**
 * `weft plan`: sets every plugin up against a kernel that only records, runs one reconcile each, and returns the
 * changes each would make. Nothing changes: no kernel write, no annotation, no state file, no HTTP server.
 */
export async function planConfig(config: WeftConfig, options: AgentOptions & { logger: Logger; timeoutMs?: number }): Promise<PluginPlan[]> {
  const recorded = new Map<string, Change[]>();
  const quiet: WeftConfig = { ...config, core: { ...config.core, http: { ...config.core.http, listen: null, socket: null } } };
  const firstRunDone = (plugin: string) => (agent.pluginStatus().find((s) => s.name === plugin)?.runs ?? 0) > 0;
  const agent: Agent = new Agent(quiet, {
    ...options,
    defaultMetrics: false,
    dryRun: true,
    recordPlan: (plugin, changes) => {
      if (!firstRunDone(plugin)) recorded.set(plugin, [...(recorded.get(plugin) ?? []), ...changes]);
    },
  });
  await agent.start();
  try {
    const deadline = performance.now() + (options.timeoutMs ?? 60_000);
    const pending = () => agent.pluginStatus().filter((s) => s.phase === 'running' && s.runs === 0);
    while (pending().length > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return agent.pluginStatus().map((s) => {
      const entry = config.plugins.find((p) => p.name === s.name);
      const error = s.phase === 'failed' ? s.lastError : s.runs === 0 ? 'no reconcile finished in time' : s.lastResult === 'success' ? undefined : s.lastError;
      return { plugin: s.name, owns: entry?.definition.kernel !== undefined, changes: recorded.get(s.name) ?? [], ...(error !== undefined ? { error } : {}) };
    });
  } finally {
    await agent.stop();
  }
}

const SYMBOL: Record<Change['op'], string> = { add: '+', replace: '~', set: '~', delete: '-' };

/** The plan as text, one line per change. */
export function formatPlan(plans: readonly PluginPlan[]): string {
  const lines: string[] = [];
  for (const p of plans) {
    if (p.error !== undefined) lines.push(`${p.plugin}: could not plan: ${p.error}`);
    else if (!p.owns) lines.push(`${p.plugin}: owns nothing in the kernel`);
    else if (p.changes.length === 0) lines.push(`${p.plugin}: no changes`);
    else {
      lines.push(`${p.plugin}: ${p.changes.length} change${p.changes.length === 1 ? '' : 's'}`);
      for (const c of p.changes) lines.push(`  ${SYMBOL[c.op]} ${c.id}${c.fields ? ` (${c.fields.join(', ')})` : ''}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The plan as JSON: each change as op, kind, id and the fields it touches. Objects are left out on purpose: a
 * WireGuard change carries keys, and a plan is printed and pasted.
 */
export function planToJson(plans: readonly PluginPlan[]): unknown {
  return {
    plans: plans.map((p) => ({
      ...p,
      changes: p.changes.map((c) => ({ op: c.op, kind: c.kind, id: c.id, ...(c.fields ? { fields: c.fields } : {}) })),
    })),
  };
}
