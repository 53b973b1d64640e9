#!/usr/bin/env node
// Bundles the built CLI and the built-in plugins into dist/weft/ (weft.mjs and the chunks it loads on demand): what
// the lab's agents and the container image run. One file instead of ~550 modules resolved and read one by one:
// the agent's start-up and memory are paid on every node (docs/performance.md, "Start-up"). Run after `tsc -b`
// (npm run build runs both).
import { readFile, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/weft`;
const { version } = JSON.parse(await readFile(`${root}core/package.json`, 'utf8'));

await rm(out, { recursive: true, force: true });
const started = performance.now();
const result = await build({
  input: { weft: `${root}tools/bundle-entry.mjs` },
  platform: 'node',
  // Replaced in core/src/build-info.ts: the bundle knows its version without a package.json beside it.
  transform: { define: { __WEFT_BUNDLE__: JSON.stringify({ version }) } },
  logLevel: 'warn',
  onLog(level, log, handler) {
    // A module both imported and loaded lazily stays where it is: expected, not worth a line per build.
    if (log.code === 'INEFFECTIVE_DYNAMIC_IMPORT' || log.code === 'EVAL') return;
    handler(level, log);
  },
  output: {
    dir: out,
    format: 'esm',
    entryFileNames: '[name].mjs',
    chunkFileNames: 'chunks/[name]-[hash].mjs',
    sourcemap: false,
    // V8 keeps every loaded file's text for as long as it runs (lazy functions compile from it), and a text with one
    // character outside ASCII is kept at two bytes per character: without comments and with non-ASCII characters
    // escaped, the agent's loaded sources take ~1.4 MiB of heap instead of ~3 (licences stay).
    comments: { legal: true, annotation: false, jsdoc: false },
    charset: 'ascii',
  },
  write: true,
});
const files = result.output.filter((o) => o.type === 'chunk');
const size = files.reduce((n, f) => n + f.code.length, 0);
process.stdout.write(`bundle: dist/weft/weft.mjs and ${String(files.length - 1)} chunks, ${(size / 1048576).toFixed(1)} MiB, ${String(Math.round(performance.now() - started))} ms\n`);
