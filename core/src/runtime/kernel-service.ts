import { WeftError } from '../api/errors.js';
import { type KernelService, NAMESPACE_PATH } from '../api/services.js';
import { requireCapabilities } from '../kernel/capabilities.js';
import { type ApplyResult, applyDesired, KernelApplyError, type KernelBackend } from '../kernel/driver.js';
import type { Change, DesiredState, KernelOwner } from '../kernel/model.js';
import type { Logger } from '../observe/logger.js';
import type { MetricsHub } from '../observe/metrics.js';

export interface KernelServiceOptions {
  readonly backend: KernelBackend;
  readonly plugin: string;
  readonly owner: KernelOwner | undefined;
  readonly logger: Logger;
  readonly metrics: MetricsHub;
  /** Under `weft plan`: record the changes, make none. */
  readonly dryRun: boolean;
  readonly record?: (changes: readonly Change[]) => void;
}

/** A plugin's kernel service: its ownership, the agent's backend, metrics and logs for every change. */
export function createKernelService(o: KernelServiceOptions): KernelService {
  const ownerOrThrow = (): KernelOwner => {
    if (!o.owner) throw new WeftError('WEFT_SERVICE_UNAVAILABLE', `plugin "${o.plugin}" declares no kernel ownership (definePlugin({ kernel: { linkPrefix, routeProtocol } }))`);
    return o.owner;
  };
  const applyOn = async (backend: KernelBackend, desired: DesiredState): Promise<ApplyResult> => {
      let result: ApplyResult;
      try {
        result = await applyDesired(backend, ownerOrThrow(), desired, { dryRun: o.dryRun });
      } catch (err) {
        if (!o.dryRun && err instanceof KernelApplyError) {
          // The kernel refused a change: counted (an alert's input), with the changes made before it.
          o.metrics.core.kernelApplyFailures.inc({ owner: o.plugin, kind: err.failed.kind });
          for (const c of err.applied) o.metrics.core.kernelChanges.inc({ owner: o.plugin, kind: c.kind, op: c.op });
        }
        throw err;
      }
      if (o.dryRun) {
        o.record?.(result.changes);
        return result;
      }
      for (const c of result.changes) o.metrics.core.kernelChanges.inc({ owner: o.plugin, kind: c.kind, op: c.op });
      if (result.changes.length > 0) {
        o.logger.info({ where: backend.where, changes: result.changes.map((c) => `${c.op} ${c.id}`) }, `kernel: ${result.changes.length} change(s)`);
      }
      return result;
  };
  return {
    owner: o.owner,
    apply: (desired) => applyOn(o.backend, desired),
    namespace(path) {
      if (typeof path !== 'string' || !NAMESPACE_PATH.test(path) || path.split('/').includes('..')) {
        throw new WeftError('WEFT_KERNEL_INPUT', `plugin "${o.plugin}": namespace ${JSON.stringify(path)}: expected a path like /run/netns/NAME or /proc/PID/ns/net`);
      }
      const backend = o.backend.inNamespace?.(path);
      if (!backend) throw new WeftError('WEFT_SERVICE_UNAVAILABLE', `plugin "${o.plugin}": this kernel backend (${o.backend.where}) cannot reach other namespaces`);
      return { path, apply: (desired) => applyOn(backend, desired), interfaces: () => backend.interfaces(o.owner) };
    },
    async require(...needs) {
      requireCapabilities(await o.backend.probe(needs), o.plugin, needs);
    },
    async wireguardStatus(device) {
      const owner = ownerOrThrow();
      if (owner.linkPrefix === undefined || !device.startsWith(owner.linkPrefix)) {
        throw new WeftError('WEFT_KERNEL_INPUT', `plugin "${o.plugin}": device ${JSON.stringify(device)} is not its own (${owner.linkPrefix === undefined ? 'it declares no link prefix' : `link prefix "${owner.linkPrefix}"`})`);
      }
      return (await o.backend.wireguardStatus(new Set([device])))[0];
    },
    async nftCounters(family, table) {
      const prefix = `weft-${ownerOrThrow().name}`;
      if (table !== prefix && !table.startsWith(`${prefix}-`)) throw new WeftError('WEFT_KERNEL_INPUT', `plugin "${o.plugin}": nftables table ${JSON.stringify(table)} is not its own (${prefix}…)`);
      return o.backend.nftCounters?.(family, table) ?? new Map();
    },
    async interfaces() {
      return o.backend.interfaces(o.owner);
    },
  };
}
