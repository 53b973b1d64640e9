import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeError, WeftError } from '../api/errors.js';
import { isPluginDefinition, PLUGIN_API_VERSION, type PluginDefinition } from '../api/plugin.js';
import { importModule } from './build-info.js';

/** A plugin that ships with weft, loaded by its config key alone. */
export interface BuiltinPlugin {
  readonly name: string;
  readonly module: string;
  readonly description: string;
  /** `planned`: the package exists but holds no plugin yet; the issue that builds it. */
  readonly status: 'available' | { readonly planned: string };
  /** The plugin's section in `weft lab up`'s default config (short intervals, so a lab converges and heals fast). */
  readonly lab?: Readonly<Record<string, unknown>>;
}

/** weft's own plugins; each is an ordinary package loaded through the same path as a third-party one. */
export const BUILTIN_PLUGINS: readonly BuiltinPlugin[] = [
  {
    name: 'wireguard',
    module: '@weft/plugin-wireguard',
    description: 'encrypted WireGuard mesh between nodes (full or by location), routes pod CIDRs through it',
    status: 'available',
    lab: { granularity: 'full', heartbeat: '5s' },
  },
  { name: 'vxlan', module: '@weft/plugin-vxlan', description: 'VXLAN overlay between nodes with unicast FDB and neighbour entries', status: { planned: 'a later issue' } },
  { name: 'gre-tunnel', module: '@weft/plugin-gre-tunnel', description: "brings a Service's external IP into its pods through GRE tunnels", status: { planned: 'a later issue' } },
  { name: 'mpls-lwtunnel', module: '@weft/plugin-mpls-lwtunnel', description: "brings a Service's external IP into its pods with per-route MPLS encapsulation", status: { planned: 'a later issue' } },
  {
    name: 'keepalive',
    module: '@weft/plugin-keepalive',
    description: 'probes every node on every plane: holds tunnels open, measures latency and loss',
    status: 'available',
    lab: { interval: '2s', timeout: '1s', planes: ['underlay', 'overlay', 'pod'], udp: { enabled: true } },
  },
];

/** Where a plugin comes from: a built-in name, or a `module:` the config names. */
export interface PluginOrigin {
  /** The key under `plugins:`. */
  readonly key: string;
  /** The `module:` value, when set. */
  readonly module?: string | undefined;
  /** The directory of the config file; relative `module:` paths resolve against it. */
  readonly baseDir: string;
}

/** Turns a `module:` value into something `import()` takes. */
export function moduleSpecifier(module: string, baseDir: string): string {
  if (module.startsWith('.') || isAbsolute(module)) return pathToFileURL(resolvePath(baseDir, module)).href;
  return module;
}

/**
 * Imports and checks a plugin. Errors say which config key, which module, and what is wrong:
 * `WEFT_PLUGIN_UNKNOWN`, `WEFT_PLUGIN_IMPORT_FAILED`, `WEFT_PLUGIN_INVALID`, `WEFT_PLUGIN_API_VERSION`,
 * `WEFT_PLUGIN_NAME_MISMATCH`.
 */
export async function loadPlugin(origin: PluginOrigin, options: ImportGuard = {}): Promise<PluginDefinition> {
  const { key } = origin;
  let specifier: string;
  let shown: string;
  if (origin.module !== undefined) {
    specifier = moduleSpecifier(origin.module, origin.baseDir);
    shown = origin.module;
  } else {
    const builtin = BUILTIN_PLUGINS.find((p) => p.name === key);
    if (!builtin) {
      const names = BUILTIN_PLUGINS.map((p) => p.name).join(', ');
      throw new WeftError('WEFT_PLUGIN_UNKNOWN', `unknown plugin "${key}": built-in plugins are ${names}; a third-party plugin needs module: <package or path>`);
    }
    if (builtin.status !== 'available') {
      throw new WeftError('WEFT_PLUGIN_UNKNOWN', `built-in plugin "${key}" is not implemented yet (${builtin.status.planned})`);
    }
    specifier = builtin.module;
    shown = builtin.module;
  }

  let mod: Record<string, unknown>;
  try {
    mod = options.timeoutMs === undefined && !options.guardExit ? await importModule(specifier) : await guardedImport(specifier, options);
  } catch (err) {
    throw new WeftError('WEFT_PLUGIN_IMPORT_FAILED', `plugin "${key}": cannot import ${shown}: ${describeError(err)}`, { cause: err });
  }
  const definition = mod.default ?? mod.plugin;
  if (!isPluginDefinition(definition)) {
    throw new WeftError('WEFT_PLUGIN_INVALID', `plugin "${key}": ${shown} has no default export made by definePlugin() from @weft/core`);
  }
  if (definition.apiVersion !== PLUGIN_API_VERSION) {
    throw new WeftError(
      'WEFT_PLUGIN_API_VERSION',
      `plugin "${key}": ${shown} was written for plugin API version ${definition.apiVersion}, this weft speaks version ${PLUGIN_API_VERSION}`,
    );
  }
  if (definition.name !== key) {
    throw new WeftError('WEFT_PLUGIN_NAME_MISMATCH', `plugin "${key}": ${shown} defines the plugin "${definition.name}"; name the config key "${definition.name}"`);
  }
  return definition;
}

/** How a plugin module is imported where a module must not hang or end the process (`weft config validate`). */
export interface ImportGuard {
  /** The import fails when the module has not finished loading by then (a top-level await that never settles). */
  readonly timeoutMs?: number;
  /** A `process.exit()` the module calls while it loads fails the import instead of ending the process. */
  readonly guardExit?: boolean;
}

class ExitDuringImport extends Error {
  constructor(code: unknown) {
    super(`it called process.exit(${typeof code === 'number' || typeof code === 'string' ? String(code) : ''}) while being imported`);
  }
}

async function guardedImport(specifier: string, options: ImportGuard): Promise<Record<string, unknown>> {
  const realExit = Object.getOwnPropertyDescriptor(process, 'exit');
  if (options.guardExit) {
    process.exit = (code?: unknown): never => {
      throw new ExitDuringImport(code);
    };
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    const loading = importModule(specifier);
    if (options.timeoutMs === undefined) return await loading;
    const ms = options.timeoutMs;
    return await Promise.race([
      loading,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`it did not finish loading within ${String(ms)} ms (a top-level await that never settles?)`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (options.guardExit && realExit) Object.defineProperty(process, 'exit', realExit);
  }
}
