#!/usr/bin/env node
// weft as it ships, per file (the bundle, dist/weft/weft.mjs, is the same from tools/bundle-entry.mjs): the core's
// CLI with the built-in plugins named. The built files live in dist/ (npm run build).
import process from 'node:process';
import { main, usePluginCatalog } from '@weft/core/cli';
import { BUILTIN_PLUGINS } from '../dist/index.js';

usePluginCatalog(BUILTIN_PLUGINS);
const code = await main(process.argv);
// The command is done: exit now, so that nothing a plugin module left running keeps the process alive.
process.exit(code);
