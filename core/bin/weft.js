#!/usr/bin/env node
// The built CLI lives in dist/; this file exists before the build so npm can link the `weft` bin.
import process from 'node:process';
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv);
