import { dependencyOf, isCoreService } from '../api/services.js';
import type { PluginEntry } from './load.js';

/** A problem with the plugins' services, on the plugin whose section it concerns. */
export interface DependencyProblem {
  readonly plugin: string;
  readonly message: string;
}

/**
 * The enabled plugins in setup order — the file's order, except that a plugin comes after the plugins whose services
 * it uses — and what is wrong with their services: a required one no enabled plugin provides, one that two provide,
 * a cycle. Each problem names the plugins on both ends.
 */
export function orderByDependencies(plugins: readonly PluginEntry[], given: ReadonlySet<string> = new Set()): { order: PluginEntry[]; problems: DependencyProblem[] } {
  const providers = new Map<string, string[]>();
  for (const p of plugins) for (const ref of p.definition.provides ?? []) providers.set(ref.id, [...(providers.get(ref.id) ?? []), p.name]);
  const problems: DependencyProblem[] = [];
  for (const [id, names] of providers) {
    if (names.length > 1) problems.push({ plugin: names[1] as string, message: `provides ${id}, which plugin "${names[0] as string}" provides too: enable one of them` });
  }
  const needs = new Map<string, Set<string>>();
  for (const p of plugins) {
    const mine = new Set<string>();
    for (const [key, entry] of Object.entries(p.definition.deps ?? {})) {
      const { ref, optional } = dependencyOf(entry);
      if (isCoreService(ref)) continue; // every plugin has the core's
      const by = providers.get(ref.id);
      if (by?.[0] !== undefined) mine.add(by[0]);
      else if (!optional && !given.has(ref.id)) problems.push({ plugin: p.name, message: `deps.${key}: needs service ${ref.id}, which no enabled plugin provides` });
    }
    needs.set(p.name, mine);
  }
  const order: PluginEntry[] = [];
  const placed = new Set<string>();
  while (order.length < plugins.length) {
    const next = plugins.find((p) => !placed.has(p.name) && [...(needs.get(p.name) ?? [])].every((n) => placed.has(n)));
    if (next === undefined) {
      problems.push(cycleIn(plugins.filter((p) => !placed.has(p.name)), needs));
      return { order: [...order, ...plugins.filter((p) => !placed.has(p.name))], problems };
    }
    order.push(next);
    placed.add(next.name);
  }
  return { order, problems };
}

/** One cycle among plugins none of which can be set up first, named in full (`a → b → a`). */
function cycleIn(left: readonly PluginEntry[], needs: ReadonlyMap<string, ReadonlySet<string>>): DependencyProblem {
  const names = new Set(left.map((p) => p.name));
  const path: string[] = [];
  let at = left[0]?.name as string;
  while (!path.includes(at)) {
    path.push(at);
    at = [...(needs.get(at) ?? [])].find((n) => names.has(n)) as string;
  }
  const cycle = [...path.slice(path.indexOf(at)), at];
  return { plugin: at, message: `its services form a cycle: ${cycle.map((n) => `"${n}"`).join(' → ')} (each needs the next one's)` };
}
