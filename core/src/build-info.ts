/**
 * Facts about how this code was built. `tools/bundle.mjs` bundles the CLI and the built-in plugins into
 * `dist/weft/weft.mjs` and its startup snapshot `dist/weft/weft.blob` (what the lab's agents and the container image
 * run) and replaces `__WEFT_BUNDLE__` there with `{ version }`; in the per-file build (`tsc`, tests, plugins developed outside the repository) it is undefined.
 */
declare const __WEFT_BUNDLE__: { readonly version: string } | undefined;

/** Set when this code runs from the bundle: weft's version as the bundle was built. */
export const BUNDLE: { readonly version: string } | undefined = typeof __WEFT_BUNDLE__ === 'object' ? __WEFT_BUNDLE__ : undefined;
