#!/usr/bin/env node
// The core's CLI with no built-in plugin: every plugin comes from `module:` in the config (the `weft` package is the
// distribution with weft's own plugins). The built CLI lives in dist/; this file exists before the build so npm can
// link the `weft-core` bin.
import process from 'node:process';
import { main } from '../dist/cli/main.js';

const code = await main(process.argv);
// The command is done: exit now, so that nothing a plugin module left running (a timer of a module that never
// finished loading, a handle of a setup that was stopped) keeps the process alive. stdout and stderr are
// synchronous on Linux for files, pipes and terminals, so nothing written is lost.
process.exit(code);
