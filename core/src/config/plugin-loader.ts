import { isAbsolute, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeError, WeftError } from '../api/errors.js';
import { isPluginDefinition, NAME_PATTERN, PLUGIN_API_VERSION, type PluginDefinition } from '../api/plugin.js';

/**
 * A plugin a distribution of weft knows by name: its config key alone (`mesh:`) loads it, `weft plugins` lists
 * it, `weft lab up` enables it, and its CLI commands are there without a config. The core knows none by itself; a
 * distribution (the `weft` package: the core and the built-in plugins) names its own with {@link usePluginCatalog}.
 */
export interface CatalogEntry {
  /** The plugin's name, its key under `plugins:`. */
  readonly name: string;
  /** The package that holds it (`@acme/weft-plugin-mesh`); a `module:` naming it loads this entry too. */
  readonly module: string;
  /** One line for `weft plugins`. */
  readonly description: string;
  /** `planned`: the package exists but holds no plugin yet; the issue that builds it. */
  readonly status: 'available' | { readonly planned: string };
  /** Imports the module (a bundle carries it: there is no node_modules to resolve it from). Absent: `import(module)`. */
  readonly load?: () => Promise<Record<string, unknown>>;
}

let catalog: readonly CatalogEntry[] = [];

/**
 * Names the plugins this distribution of weft carries (call it before `main`). Replaces any catalog before; throws
 * on a bad or repeated name.
 */
export function usePluginCatalog(entries: readonly CatalogEntry[]): void {
  const seen = new Set<string>();
  for (const e of entries) {
    if (!NAME_PATTERN.test(e.name)) throw new TypeError(`plugin catalog: bad name ${JSON.stringify(e.name)}`);
    if (seen.has(e.name)) throw new TypeError(`plugin catalog: ${e.name} twice`);
    seen.add(e.name);
  }
  catalog = Object.freeze([...entries]);
}

/** The plugins this distribution carries ({@link usePluginCatalog}); empty for the bare core. */
export function pluginCatalog(): readonly CatalogEntry[] {
  return catalog;
}

/** The catalog's plugins that exist (not planned), loaded. */
export async function loadCatalogPlugins(baseDir = process.cwd()): Promise<PluginDefinition[]> {
  const out: PluginDefinition[] = [];
  for (const p of catalog) if (p.status === 'available') out.push(await loadPlugin({ key: p.name, baseDir }));
  return out;
}

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
    const builtin = catalog.find((p) => p.name === key);
    if (!builtin) {
      const names = catalog.map((p) => p.name).join(', ');
      const known = names === '' ? 'this weft carries no built-in plugin' : `built-in plugins are ${names}`;
      throw new WeftError('WEFT_PLUGIN_UNKNOWN', `unknown plugin "${key}": ${known}; a third-party plugin needs module: <package or path>`);
    }
    if (builtin.status !== 'available') {
      throw new WeftError('WEFT_PLUGIN_UNKNOWN', `built-in plugin "${key}" is not implemented yet (${builtin.status.planned})`);
    }
    specifier = builtin.module;
    shown = builtin.module;
  }

  let mod: Record<string, unknown>;
  try {
    const carried = catalog.find((p) => p.module === specifier)?.load;
    const load = carried ?? (() => import(specifier) as Promise<Record<string, unknown>>);
    mod = options.timeoutMs === undefined && !options.guardExit ? await load() : await guardedImport(load, options);
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

async function guardedImport(load: () => Promise<Record<string, unknown>>, options: ImportGuard): Promise<Record<string, unknown>> {
  const realExit = Object.getOwnPropertyDescriptor(process, 'exit');
  if (options.guardExit) {
    process.exit = (code?: unknown): never => {
      throw new ExitDuringImport(code);
    };
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    const loading = load();
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
