// The bundle's entry (tools/bundle.mjs): weft as it ships — the core's CLI with the distribution's plugins inside
// (distribution/bin/weft.js, bundled), so that nothing is resolved from node_modules at run time. Plugins named by
// `module:` in a config are still imported from where they are.
import process from 'node:process';
import { main, usePluginCatalog } from '../core/dist/cli/index.js';
import { BUILTIN_PLUGINS } from '../distribution/dist/index.js';

usePluginCatalog(BUILTIN_PLUGINS);
const code = await main(process.argv);
// As distribution/bin/weft.js: the command is done; nothing a plugin left running keeps the process alive.
process.exit(code);
