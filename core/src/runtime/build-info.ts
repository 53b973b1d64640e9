/**
 * Facts about how this code was built. `tools/bundle.mjs` bundles the CLI and the built-in plugins into
 * `dist/weft/weft.mjs` (what the lab's agents and the container image run) and replaces `__WEFT_BUNDLE__` there with
 * `{ version }`; in the per-file build (`tsc`, tests, plugins developed outside the repository) it is undefined.
 */
declare const __WEFT_BUNDLE__: { readonly version: string } | undefined;

/** Set when this code runs from the bundle: weft's version as the bundle was built. */
export const BUNDLE: { readonly version: string } | undefined = typeof __WEFT_BUNDLE__ === 'object' ? __WEFT_BUNDLE__ : undefined;

/**
 * Modules a bundle carries, by the specifier a config would `import()` (`@weft/plugin-wireguard`): there is no
 * node_modules to resolve them from. Filled by the bundle's entry before the CLI runs.
 */
const bundled = new Map<string, () => Promise<Record<string, unknown>>>();

/** @internal For the bundle's entry: serve `import(specifier)` of a plugin from `load`. */
export function registerBundledModule(specifier: string, load: () => Promise<Record<string, unknown>>): void {
  bundled.set(specifier, load);
}

/** @internal `import(specifier)`, from the bundle when it carries the module. */
export function importModule(specifier: string): Promise<Record<string, unknown>> {
  const load = bundled.get(specifier);
  return load ? load() : (import(specifier) as Promise<Record<string, unknown>>);
}
