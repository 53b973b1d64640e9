import type { Change } from '../kernel/model.js';
import type { KernelBackend } from '../kernel/driver.js';
import { applyDesired } from '../kernel/driver.js';
import type { WeftConfig } from '../config/load.js';
import { ANNOTATION_KEY } from '../discovery/publisher.js';
import type { Logger } from '../observe/logger.js';
import { defaultNodeSourceFactory, kernelFor, type NodeSourceFactory, resolveNodeName } from './agent.js';

/** What `weft cleanup` removed. */
export interface CleanupReport {
  readonly node: string;
  readonly annotations: readonly string[];
  readonly kernel: readonly { readonly plugin: string; readonly changes: readonly Change[] }[];
}

/**
 * `weft cleanup`: removes weft's own annotations (`weft.io/…`) from this node, and — unless `keepKernel` — everything
 * each enabled plugin owns in the kernel (an empty desired state per owner). Foreign annotations and kernel objects
 * stay. Plugins are not set up: ownership comes from their definitions alone.
 */
export async function cleanupNode(
  config: WeftConfig,
  options: { env: NodeJS.ProcessEnv; logger: Logger; keepKernel?: boolean; kernel?: KernelBackend; nodeSourceFactory?: NodeSourceFactory },
): Promise<CleanupReport> {
  const node = resolveNodeName(config.core, options.env);
  const source = (options.nodeSourceFactory ?? defaultNodeSourceFactory)(config.core, node, options.logger);
  await source.start(new Set(['nodes']), () => undefined);
  let annotations: string[];
  try {
    annotations = Object.keys(source.current().self.annotations).filter((k) => ANNOTATION_KEY.test(k));
    if (annotations.length > 0) await source.publish(Object.fromEntries(annotations.map((k) => [k, null])));
  } finally {
    await source.stop();
  }
  const kernel: { plugin: string; changes: Change[] }[] = [];
  if (!options.keepKernel) {
    const backend = options.kernel ?? kernelFor(config.core);
    for (const entry of [...config.plugins].reverse()) {
      if (!entry.definition.kernel) continue;
      const { changes } = await applyDesired(backend, { name: entry.name, ...entry.definition.kernel }, {});
      kernel.push({ plugin: entry.name, changes: [...changes] });
    }
  }
  return { node, annotations, kernel };
}

/** The report as text. */
export function formatCleanup(r: CleanupReport): string {
  const lines = [`node ${r.node}: ${r.annotations.length === 0 ? 'no weft annotations' : `removed ${r.annotations.join(', ')}`}`];
  for (const k of r.kernel) {
    lines.push(k.changes.length === 0 ? `${k.plugin}: nothing in the kernel` : `${k.plugin}: removed ${k.changes.length} kernel object${k.changes.length === 1 ? '' : 's'}`);
    for (const c of k.changes) lines.push(`  - ${c.id}`);
  }
  return `${lines.join('\n')}\n`;
}
