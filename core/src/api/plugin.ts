import type { z } from 'zod';
import type { KernelOwner } from '../kernel/model.js';
import { checkOwner, type KernelInputError } from '../kernel/normalize.js';
import { type DependencyDeclaration, isCoreService, type ResolvedDependencies, type ServiceRef } from './services.js';
import type { ClusterView, Watchable } from './cluster.js';
import { NODE_FIELDS, type NodeReads } from './cluster.js';

/**
 * The plugin API version this core speaks. A plugin declares the version it was written against; the host
 * refuses a plugin whose version differs (`WEFT_PLUGIN_API_VERSION`). 2: a setup gets only the services it declared
 * in `deps` (1 handed every core service by name); docs/plugins.md says how to move a plugin on.
 */
export const PLUGIN_API_VERSION = '2';

/** Marks objects made by {@link definePlugin}; `Symbol.for` so that a second copy of `@weft/core` agrees. */
export const PLUGIN_BRAND: unique symbol = Symbol.for('weft.plugin') as never;

/** What a plugin (and a command it declares) may be named: its config key. */
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;
const WATCHABLES: readonly Watchable[] = ['nodes', 'services', 'endpointslices'];

/** Keys of a plugin's config section that belong to the host, not to the plugin's schema. */
export const HOST_KEYS = ['enabled', 'module', 'onBootFailure', 'setupTimeout', 'reconcile'] as const;

/** What a reconcile gets: the view to converge to, and a signal aborted on timeout or stop. */
export interface ReconcileContext {
  /** The cluster snapshot this run works from. */
  readonly view: ClusterView;
  /** Aborted when the run times out or the plugin stops; pass it to every await that can take long. */
  readonly signal: AbortSignal;
  /** Why this run happens (merged triggers: `start`, `cluster`, `resync`, `retry`, `requeue`, or a plugin's own). */
  readonly reasons: ReadonlySet<string>;
  /** 0 for a fresh run, n for the n-th retry after errors. */
  readonly attempt: number;
}

/** What a reconcile may return. */
export interface ReconcileOutcome {
  /** Run again after this many milliseconds even without a trigger. */
  readonly requeueAfter?: number;
}

/** What `stop` is told. */
export interface StopContext {
  /**
   * `true` when the plugin is switched off or `weft cleanup` runs: remove what it put in the data plane.
   * `false` on agent shutdown or reconfiguration: leave the data plane as it is so that traffic keeps flowing.
   */
  readonly cleanup: boolean;
}

/**
 * What a plugin says about itself on this node: the host serves it at `GET /api/<plugin>/status`, `weft lab status`
 * prints `summary` in the node's row, treats `converged: false` as a reason the lab has not converged, and prints
 * each table of `row` as a node × node matrix. Whatever else the returned object holds (a subtype: the plugin's own
 * details) is served as it is.
 */
export interface PluginStatusReport {
  /** True when this node is where the plugin wants it (every peer configured, every probe answered, …). */
  readonly converged: boolean;
  /** One short line for a table cell: `2 peers, 2 with a fresh handshake`. */
  readonly summary: string;
  /**
   * This node's row of node × node matrices, by matrix name: per other node's name, a short cell
   * (a prober's: `{ underlay: { n2: '0.4ms', n3: 'lost' } }`).
   */
  readonly row?: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/** The running instance that `setup` returns. */
export interface PluginInstance {
  /** Level-triggered and idempotent: converge the node to what the view and config ask for. */
  reconcile(context: ReconcileContext): Promise<ReconcileOutcome | void>;
  /** Releases what setup acquired. Called once; the host never calls reconcile after it. */
  stop?(context: StopContext): Promise<void>;
  /**
   * This node's status, served by the host at `GET /api/<plugin>/status` (a plugin with `status` registers no
   * `/status` route of its own). Called on each request: keep it cheap, from what the last reconcile saw.
   */
  status?(): PluginStatusReport;
}

/**
 * A CLI command a plugin adds: `weft <plugin> <name> [arguments…]` asks a running agent for one of the plugin's
 * routes and prints the answer (the agent is found as for every agent command: `--config`, `--url`, `--lab`). The
 * command runs no plugin code on the operator's machine beyond `path`.
 */
export interface PluginCommand {
  /** The sub-command's name: lowercase letters, digits and dashes. */
  readonly name: string;
  /** One line for `weft <plugin> --help`. */
  readonly description: string;
  /** Positional arguments, all required, in order. */
  readonly arguments?: readonly { readonly name: string; readonly description: string }[];
  /**
   * The route to GET, below the plugin's base path (`/graph`, `/peer-config?name=…`), from the arguments as given;
   * encode what goes into a query string.
   */
  path(args: readonly string[]): string;
}

/**
 * What the plugin brings to `weft lab up` (the local lab of network namespaces, one per simulated node). A lab made
 * without a config enables every plugin its distribution carries (each with its `config`), but those that say
 * `enabled: false`.
 */
export interface PluginLabDefaults<C = Record<string, unknown>> {
  /**
   * `false`: not in a lab made without a config — a plugin that cannot run beside the others' defaults (the vxlan
   * plugin's pod overlay beside the WireGuard mesh: both route the pod CIDRs). `weft lab up --config` enables it.
   */
  readonly enabled?: boolean;
  /** The plugin's config section in the lab (short intervals, so that a lab converges and heals fast). */
  readonly config?: C;
  /**
   * Annotations the lab puts on a node, as an operator would (a NAT node's keepalive, say). Only keys of the
   * plugin's own prefix make sense; the lab refuses keys outside `weft.io/`.
   */
  annotations?(node: LabNodeFacts): Readonly<Record<string, string>>;
}

/** What the lab tells a plugin about a node it makes. */
export interface LabNodeFacts {
  readonly name: string;
  /** The node's location (its region label). */
  readonly location: string;
  /** True when the node sits behind NAT. */
  readonly nat: boolean;
}

/**
 * What a plugin's `setup` receives: who it is, its config, its lifetime, and exactly the services it declared in
 * `deps` — the core's (`coreServices.logger`, `coreServices.kernel`, …, each bound to this plugin) and other plugins'
 * — and nothing else: a plugin that declares no `coreServices.kernel` cannot touch the kernel, one without
 * `coreServices.publish` cannot annotate its node.
 */
export interface PluginServices<C, D extends DependencyDeclaration = DependencyDeclaration> {
  /** The plugin's name. */
  readonly name: string;
  /** The plugin's validated config section (host keys removed). */
  readonly config: C;
  /** Aborted when this instance is being stopped. */
  readonly lifetime: AbortSignal;
  /** True under `weft plan`: the plugin must change nothing outside the kernel service (which only records). */
  readonly dryRun: boolean;
  /** The services this plugin declared in `deps`, by the names it gave them (other plugins' are set up before it). */
  readonly deps: ResolvedDependencies<D>;
  /**
   * Offers a service to other plugins: one of the refs this plugin declared in `provides`, each exactly once, during
   * setup. Its consumers are set up after this setup returns, and set up again when this plugin is.
   */
  readonly provide: <T>(ref: ServiceRef<T>, value: T) => void;
}

/**
 * What a plugin owns in the kernel: links whose names start with `linkPrefix` (none without one), routes with protocol
 * `routeProtocol` (100-199; each plugin its own), rules with priorities in `rulePriorities`. The core refuses two
 * plugins whose ownership overlaps, and removes everything owned when the plugin is switched off.
 */
export type KernelOwnership = Omit<KernelOwner, 'name'>;

/** What a plugin author declares. */
export interface PluginDeclaration<S extends z.ZodType, D extends DependencyDeclaration = DependencyDeclaration> {
  /** Unique name; the key under `plugins:` in the config. Lowercase letters, digits and dashes. */
  readonly name: string;
  /** The plugin API version the plugin was written against ({@link PLUGIN_API_VERSION}). */
  readonly apiVersion: string;
  /** One line for `weft plugins`. */
  readonly description: string;
  /** Schema of the plugin's config section; an object schema (use `z.object` or `z.strictObject`). */
  readonly config: S;
  /** What the core must discover for this plugin (`nodes` is always discovered). */
  readonly watches?: readonly Watchable[];
  /**
   * The part of each node the plugin reads (annotation and label keys, node fields). A cluster change that touches
   * none of it — another plugin's annotation, a label the plugin ignores — does not run the plugin. Absent: every
   * change does. Nodes coming and going, and the Services and EndpointSlices it watches, always count. A function
   * of the plugin's config when that decides it (the labels of the config's node selectors); called at each config
   * load, and a change of its answer restarts discovery with the new interest.
   */
  readonly reads?: NodeReads | ((config: z.output<S>) => NodeReads);
  /** What the plugin owns in the kernel; required to use `kernel.apply`. */
  readonly kernel?: KernelOwnership;
  /**
   * The services the plugin uses — and the only ones its setup gets — by the name it finds them under
   * (`services.deps.kernel`): the core's (`coreServices.kernel`, …) and other plugins' (a {@link ServiceRef} is
   * required, an {@link optionalService} may be absent). The host sets providers up first and refuses, at config
   * load, a required service no enabled plugin provides, two providers of one service, and a cycle.
   */
  readonly deps?: D;
  /** Services this plugin offers to others (each given with `services.provide` during setup). */
  readonly provides?: readonly ServiceRef<unknown>[];
  /** CLI commands the plugin adds, as `weft <plugin> <command>`. */
  readonly commands?: readonly PluginCommand[];
  /** What the plugin brings to `weft lab up`. */
  readonly lab?: PluginLabDefaults<z.input<S>>;
  /** Called once per start or reconfiguration; the host enforces a timeout. */
  setup(this: void, services: PluginServices<z.output<S>, D>): PluginInstance | Promise<PluginInstance>;
}

/** A checked, frozen plugin definition; what a plugin module exports as default. */
export interface PluginDefinition<S extends z.ZodType = z.ZodType, D extends DependencyDeclaration = DependencyDeclaration> extends PluginDeclaration<S, D> {
  readonly watches: readonly Watchable[];
  readonly [PLUGIN_BRAND]: true;
}

/**
 * Declares a plugin. Misuse (bad name, missing setup, unknown watch) throws at once, so that a broken plugin fails
 * where it is written rather than when the agent loads it.
 *
 * @example
 * export default definePlugin({
 *   name: 'hello', apiVersion: '2', description: 'says hello',
 *   config: z.strictObject({ greeting: z.string().default('hi') }),
 *   deps: { logger: coreServices.logger },
 *   setup({ config, deps: { logger } }) {
 *     return { reconcile: async ({ view }) => logger.info({ nodes: view.nodes.length }, config.greeting) };
 *   },
 * });
 */
export function definePlugin<S extends z.ZodType, D extends DependencyDeclaration = Record<never, never>>(declaration: PluginDeclaration<S, D>): PluginDefinition<S, D> {
  const { name, apiVersion, description, config, setup } = declaration;
  const where = `definePlugin(${JSON.stringify(name)})`;
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new TypeError(`${where}: name must match ${NAME_PATTERN.source}`);
  }
  if (typeof apiVersion !== 'string' || apiVersion === '') throw new TypeError(`${where}: apiVersion must be a string like "2"`);
  if (typeof description !== 'string' || description.trim() === '') throw new TypeError(`${where}: description is required`);
  if (typeof setup !== 'function') throw new TypeError(`${where}: setup must be a function`);
  if (config === null || typeof config !== 'object' || typeof (config as { safeParse?: unknown }).safeParse !== 'function') {
    throw new TypeError(`${where}: config must be a schema made with the z exported by @weft/core`);
  }
  if (declaration.kernel !== undefined) {
    try {
      checkOwner({ name, ...declaration.kernel });
    } catch (err) {
      throw new TypeError(`${where}: kernel ownership: ${(err as KernelInputError).problems.join('; ')}`);
    }
  }
  if (declaration.reads !== undefined && typeof declaration.reads !== 'function') checkReads(where, declaration.reads);
  checkServices(where, declaration.deps, declaration.provides);
  checkCommands(where, declaration.commands);
  if (declaration.lab !== undefined) {
    const lab = declaration.lab as PluginLabDefaults;
    if (lab.config !== undefined && (lab.config === null || typeof lab.config !== 'object' || Array.isArray(lab.config))) throw new TypeError(`${where}: lab.config must be a map (the plugin's config section)`);
    if (lab.annotations !== undefined && typeof lab.annotations !== 'function') throw new TypeError(`${where}: lab.annotations must be a function of the node`);
    if (lab.enabled !== undefined && typeof lab.enabled !== 'boolean') throw new TypeError(`${where}: lab.enabled must be true or false`);
  }
  const watches = declaration.watches ?? ['nodes'];
  for (const w of watches) {
    if (!WATCHABLES.includes(w)) throw new TypeError(`${where}: unknown watch ${JSON.stringify(w)}; expected one of ${WATCHABLES.join(', ')}`);
  }
  return Object.freeze({
    ...declaration,
    watches: Object.freeze([...new Set<Watchable>(['nodes', ...watches])]),
    [PLUGIN_BRAND]: true as const,
  });
}

function checkServices(where: string, deps: DependencyDeclaration | undefined, provides: readonly ServiceRef<unknown>[] | undefined): void {
  const isRef = (x: unknown): x is ServiceRef<unknown> => typeof x === 'object' && x !== null && typeof (x as ServiceRef<unknown>).id === 'string' && typeof (x as ServiceRef<unknown>).token === 'symbol';
  if (provides !== undefined && (!Array.isArray(provides) || !provides.every(isRef))) throw new TypeError(`${where}: provides must be a list of refs made with createServiceRef`);
  const offered = new Set((provides ?? []).map((r) => r.id));
  for (const ref of provides ?? []) if (isCoreService(ref)) throw new TypeError(`${where}: provides ${ref.id}, a service of the core; a plugin provides services of its own`);
  for (const [name, entry] of Object.entries(deps ?? {})) {
    const ref = isRef(entry) ? entry : typeof entry === 'object' && entry !== null && 'ref' in entry && isRef(entry.ref) ? entry.ref : undefined;
    if (ref === undefined) throw new TypeError(`${where}: deps.${name} must be a ref made with createServiceRef, or optionalService(ref)`);
    if (offered.has(ref.id)) throw new TypeError(`${where}: deps.${name}: the plugin provides ${ref.id} itself`);
  }
}

function checkCommands(where: string, commands: readonly PluginCommand[] | undefined): void {
  if (commands === undefined) return;
  if (!Array.isArray(commands)) throw new TypeError(`${where}: commands must be a list`);
  const seen = new Set<string>();
  for (const c of commands as readonly PluginCommand[]) {
    const name = (c as { name?: unknown } | null)?.name;
    if (typeof name !== 'string' || !NAME_PATTERN.test(name)) throw new TypeError(`${where}: commands: a name must match ${NAME_PATTERN.source}, got ${JSON.stringify(name)}`);
    if (seen.has(name)) throw new TypeError(`${where}: commands: ${name} twice`);
    seen.add(name);
    if (typeof c.description !== 'string' || c.description.trim() === '') throw new TypeError(`${where}: commands.${name}: description is required`);
    if (typeof c.path !== 'function') throw new TypeError(`${where}: commands.${name}: path must be a function of the arguments`);
    for (const a of c.arguments ?? []) {
      if (typeof a.name !== 'string' || !NAME_PATTERN.test(a.name)) throw new TypeError(`${where}: commands.${name}: an argument name must match ${NAME_PATTERN.source}`);
    }
  }
}

function checkReads(where: string, reads: NodeReads): void {
  const keys = (what: string, list: unknown) => {
    if (list === undefined) return;
    if (!Array.isArray(list) || list.some((k) => typeof k !== 'string' || k === '' || k.indexOf('*') !== -1 && k.indexOf('*') !== k.length - 1)) {
      throw new TypeError(`${where}: reads.${what} must be a list of keys, a trailing * making one a prefix`);
    }
  };
  keys('annotations', reads.annotations);
  keys('labels', reads.labels);
  if (reads.fields !== undefined) {
    const unknown = reads.fields.filter((f) => !NODE_FIELDS.includes(f));
    if (!Array.isArray(reads.fields) || unknown.length > 0) throw new TypeError(`${where}: reads.fields: unknown ${unknown.join(', ')}; expected some of ${NODE_FIELDS.join(', ')}`);
  }
}

/**
 * The part of each node a plugin reads with this config: its `reads`, or what its `reads` function answers for the
 * config (checked like a declared one; a bad answer throws a TypeError naming the plugin).
 */
export function pluginReads(definition: Pick<PluginDefinition, 'name' | 'reads'>, config: unknown): NodeReads | undefined {
  const reads = definition.reads;
  if (typeof reads !== 'function') return reads;
  const answer = reads(config);
  checkReads(`plugin ${JSON.stringify(definition.name)}: reads(config)`, answer);
  return answer;
}

/** True when `value` was made by {@link definePlugin} (of any copy of `@weft/core`). */
export function isPluginDefinition(value: unknown): value is PluginDefinition {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[PLUGIN_BRAND] === true;
}
