/**
 * `@weft/core/cli`: the CLI (`weft run`, `weft config`, `weft lab`, …) for a distribution of weft to run. A
 * distribution names the plugins it carries with {@link usePluginCatalog}, then calls {@link main}:
 *
 * ```js
 * import { main, usePluginCatalog } from '@weft/core/cli';
 * usePluginCatalog([{ name: 'hello', module: '@acme/weft-hello', description: 'says hello', status: 'available' }]);
 * process.exit(await main(process.argv));
 * ```
 *
 * The core's own bin (`weft-core`) runs it with no catalog: plugins come from `module:` in the config.
 */
export { type CliIO, EXIT, main } from './main.js';
export { type CatalogEntry, pluginCatalog, usePluginCatalog } from '../config/plugin-loader.js';
