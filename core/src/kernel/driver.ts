import { WeftError } from '../errors.js';
import type { Capability, DoctorReport } from './capabilities.js';
import { diffState } from './diff.js';
import type { Change, DesiredState, InterfaceInfo, KernelOwner, NftCounter, NftTable, WireGuardDeviceStatus } from './model.js';
import { checkOwner, normalizeDesired, type NormalState } from './normalize.js';

/** What an apply did. */
export interface ApplyResult {
  /** Every change, in the order it was (or, for a plan, would be) made. */
  readonly changes: readonly Change[];
  /** Processes spawned (reads and writes), for the benchmark and metrics. */
  readonly processes: number;
}

/** Thrown when a kernel command fails: which change, the kernel's answer, and what was applied before it. */
export class KernelApplyError extends WeftError {
  constructor(
    readonly failed: Change,
    readonly reason: string,
    readonly applied: readonly Change[],
  ) {
    super('WEFT_KERNEL_APPLY', `${failed.id}: ${reason}`);
  }
}

/** What a read should include beyond the owner's objects. */
export interface ObserveHints {
  /** Sysctls whose values to read. */
  readonly sysctlKeys?: readonly string[];
  /** The desired state has nftables tables (a backend may skip reading nftables for owners that never had any). */
  readonly nftables?: boolean;
  /** The desired state has MPLS routes (likewise). */
  readonly mpls?: boolean;
  /** Other namespaces the desired state moves links into: their owned links are read too. */
  readonly linkNetns?: readonly string[];
}

/**
 * One network namespace's kernel, as the diff engine sees it. Implementations: {@link Iproute2Kernel} (the real
 * one) and {@link MemoryKernel} (tests and the plugin test kit). Both pass the same contract suite.
 */
export interface KernelBackend {
  /** Where this backend acts, for logs (`netns weft-n1`, `own namespace`). */
  readonly where: string;
  /** The owner's objects as the kernel has them, plus the current values of the given sysctls. */
  observe(owner: KernelOwner, hints?: ObserveHints): Promise<{ state: NormalState; processes: number }>;
  /** Makes the changes in order; on failure throws {@link KernelApplyError}. Returns processes spawned. */
  execute(owner: KernelOwner, changes: readonly Change[]): Promise<number>;
  /** What this kernel and machine support (`weft doctor`); `only`: just these capabilities (what a plugin requires). */
  probe(only?: readonly Capability[]): Promise<DoctorReport>;
  /** Run-time state of these WireGuard devices (those that exist). */
  wireguardStatus(names: ReadonlySet<string>): Promise<WireGuardDeviceStatus[]>;
  /**
   * Every interface of the namespace with its MTU and addresses. Asked for an owner, a backend may read the owner's
   * state with it and keep that for the owner's apply right after (one read instead of two).
   */
  interfaces(owner?: KernelOwner): Promise<InterfaceInfo[]>;
  /**
   * The same kind of backend acting in another network namespace of this machine, given by path (`/run/netns/NAME`,
   * `/proc/PID/ns/net`): a pod's. Absent: the backend cannot reach other namespaces.
   */
  inNamespace?(path: string): KernelBackend;
  /** The named counters of an nftables table (`nft -j list counters table …`); an empty map when it has none. */
  nftCounters?(family: NftTable['family'], name: string): Promise<ReadonlyMap<string, NftCounter>>;
  /**
   * Releases what the backend keeps running (the iproute2 backend's `ip monitor` and control-socket connections);
   * the agent calls it when it stops.
   */
  close?(): void;
}

/** Per owner: the last desired state that normalised (as JSON), and what it normalised to. */
const lastNormal = new WeakMap<KernelOwner, { json: string; normal: NormalState }>();

/**
 * {@link normalizeDesired}, done once for a desired state that is the same as the owner's last one (as JSON): a
 * steady reconcile asks for what it asked for before. A state that is not plain JSON is normalised every time.
 */
function normalizeOnce(owner: KernelOwner, desired: DesiredState): NormalState {
  let json: string;
  try {
    json = JSON.stringify(desired);
  } catch {
    return normalizeDesired(owner, desired);
  }
  const kept = lastNormal.get(owner);
  if (kept?.json === json) return kept.normal;
  const normal = normalizeDesired(owner, desired);
  lastNormal.set(owner, { json, normal });
  return normal;
}

/** Per owner: the last diff, of which normalised state and which observed state (as JSON). */
const lastDiff = new WeakMap<KernelOwner, { normal: NormalState; observed: string; changes: Change[] }>();

/** {@link diffState}, done once while neither side changed: a steady reconcile finds what it found before. */
function diffOnce(owner: KernelOwner, observed: NormalState, normal: NormalState): Change[] {
  const json = JSON.stringify(observed);
  const kept = lastDiff.get(owner);
  if (kept?.normal === normal && kept.observed === json) return kept.changes;
  const changes = diffState(observed, normal);
  lastDiff.set(owner, { normal, observed: json, changes });
  return changes;
}

/**
 * Validates `desired`, reads what the kernel has for `owner`, diffs, and (unless `dryRun`) applies the difference in
 * one batch. An unchanged desired state makes no writes. Equals what `weft plan` prints when `dryRun` is set.
 */
export async function applyDesired(
  backend: KernelBackend,
  owner: KernelOwner,
  desired: DesiredState,
  options: { dryRun?: boolean } = {},
): Promise<ApplyResult> {
  checkOwner(owner);
  const normal = normalizeOnce(owner, desired);
  const observed = await backend.observe(owner, { sysctlKeys: normal.sysctls.map((s) => s.key), nftables: normal.nftables.length > 0,
    mpls: normal.mplsRoutes.length > 0,
    linkNetns: [...new Set(normal.links.flatMap((l) => (l.netns !== undefined ? [l.netns] : [])))],
  });
  const changes = diffOnce(owner, observed.state, normal);
  if (options.dryRun || changes.length === 0) return { changes, processes: observed.processes };
  const written = await backend.execute(owner, changes);
  return { changes, processes: observed.processes + written };
}
