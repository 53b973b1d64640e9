// The bundle's entry (tools/bundle.mjs): weft's CLI with the built-in plugins inside, so that nothing is resolved
// from node_modules at run time. Plugins named by `module:` in a config are still imported from where they are.
import process from 'node:process';
import { main } from '../core/dist/cli/main.js';
import { registerBundledModule } from '../core/dist/runtime/build-info.js';

registerBundledModule('@weft/plugin-wireguard', () => import('../plugins/wireguard/dist/index.js'));
registerBundledModule('@weft/plugin-keepalive', () => import('../plugins/keepalive/dist/index.js'));

const code = await main(process.argv);
// As core/bin/weft.js: the command is done; nothing a plugin left running keeps the process alive.
process.exit(code);
