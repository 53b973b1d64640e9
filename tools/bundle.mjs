#!/usr/bin/env node
// Bundles the built CLI and the built-in plugins into dist/weft/ (weft.mjs and the chunks it loads on demand): what
// the lab's agents and the container image run. One file instead of ~550 modules resolved and read one by one:
// the agent's start-up and memory are paid on every node (docs/performance.md, "Start-up"). Run after `tsc -b`
// (npm run build runs both).
import { execFileSync } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/weft`;
const { version } = JSON.parse(await readFile(`${root}core/package.json`, 'utf8'));

await rm(out, { recursive: true, force: true });
const started = performance.now();
const result = await build({
  // kube-full: the full Kubernetes client, in a file of its own that the snapshot (below) can load.
  input: { weft: `${root}tools/bundle-entry.mjs`, 'kube-full': `${root}core/dist/discovery/kube-full.js` },
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

// The agent's startup snapshot: dist/weft/weft.blob, what `node --snapshot-blob dist/weft/weft.blob run …` starts
// from (the lab's agents and the container image do). Node builds it by running one CommonJS file
// (tools/snapshot-entry.mjs, bundled whole) and keeping the heap it leaves. Where that file differs from the bundle:
// - hold `node:http`, `node:https` or `node:tls` (their native parts have no snapshot support): required on first
//   use instead (what a module reads of them at load time would fail the build, loudly);
// - `import()`: there is no ES module loader behind a snapshot's code. The plugin loader's `import(module)` of a
//   third-party plugin, and the full Kubernetes client (dist/weft/kube-full.mjs, from the bundle above), go through
//   a function compiled with Node's default loader, resolving from the blob's directory as the bundle resolves
//   from its own;
// - the full client itself stays out of the snapshot (used only for an exotic kubeconfig).
const LAZY = /^(?:node:)?(?:https?|tls)$/;
const snapshotStarted = performance.now();
const snap = await build({
  input: { snapshot: `${root}tools/snapshot-entry.mjs` },
  platform: 'node',
  transform: { define: { __WEFT_BUNDLE__: JSON.stringify({ version }) } },
  logLevel: 'warn',
  onLog(level, log, handler) {
    // `import.meta.resolve` (the CLI's check that a `module:` resolves, for `weft plugins`) is not the agent's path.
    if (log.code === 'INEFFECTIVE_DYNAMIC_IMPORT' || log.code === 'EVAL' || log.code === 'EMPTY_IMPORT_META') return;
    handler(level, log);
  },
  plugins: [{ name: 'kube-full', resolveId: (id) => (/\/kube-full\.js$/.test(id) ? { id: 'weft:kube-full', external: true } : null) }],
  output: { format: 'cjs', codeSplitting: false, sourcemap: false, comments: { legal: true, annotation: false, jsdoc: false }, charset: 'ascii' },
  write: false,
});
let code = snap.output[0].code;
const count = (re) => (code.match(re) ?? []).length;
// `let node_http = require("node:http"); node_http = __toESM(node_http, 1);` → one lazy value (it has a default).
code = code.replace(/^(let (\w+) = )require\("([\w:]+)"\);\n\2 = __toESM\(\2, 1\);$/gm, (all, head, _name, id) => (LAZY.test(id) ? `${head}__weftLazy(() => require("${id}"));` : all));
code = code.replace(/require\("([\w:]+)"\)/g, (all, id) => (LAZY.test(id) ? `__weftLazy(() => require("${id}"))` : all));
code = code.replace(/\(0, node_module\.createRequire\)\([^()]*\(__filename\)\.href\)\("node:http"\)/g, '__weftLazy(() => require("node:http"))');
const imports = count(/\bimport\(/g);
if (imports !== 2) throw new Error(`the snapshot's bundle has ${String(imports)} import() calls, expected 2 (the plugin loader's and kube-full's): tools/bundle.mjs must learn the new one`);
code = code.replace(/\bimport\(/g, '__weftImport(');
const prelude = `// weft's startup snapshot (tools/bundle.mjs): a module that cannot be in it is required on first use; import() goes
// through Node's default loader, resolving from the blob's directory.
var __weftLazy = (load) => { let m; const get = () => (m ??= load()); return new Proxy({}, { get: (_, k) => (k === "default" ? get() : get()[k]), has: (_, k) => k in get(), ownKeys: () => Reflect.ownKeys(get()), getOwnPropertyDescriptor: (_, k) => { const d = Reflect.getOwnPropertyDescriptor(get(), k); if (d) d.configurable = true; return d; } }); };
var __weftImporter;
var __weftImport = (specifier) => {
  if (!__weftImporter) {
    const vm = require("node:vm"), path = require("node:path");
    const at = process.execArgv.indexOf("--snapshot-blob");
    const dir = at >= 0 ? path.dirname(path.resolve(process.execArgv[at + 1])) : __dirname;
    // Node calls the default loader for vm code experimental and says so at the first import: not the user's concern.
    const emit = process.emitWarning;
    process.emitWarning = function (w, ...rest) { if (!String(w).includes("USE_MAIN_CONTEXT_DEFAULT_LOADER")) emit.call(process, w, ...rest); };
    __weftImporter = vm.compileFunction("return import(s)", ["s"], { filename: path.join(dir, "weft.mjs"), importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER });
    __weftImporter.kubeFull = require("node:url").pathToFileURL(path.join(dir, "kube-full.mjs")).href;
  }
  return __weftImporter(specifier === "weft:kube-full" ? __weftImporter.kubeFull : specifier);
};
`;
await writeFile(`${out}/snapshot.cjs`, prelude + code);
// Built with the Node that runs it: a blob serves only the exact binary that made it.
execFileSync(process.execPath, ['--snapshot-blob', `${out}/weft.blob`, '--build-snapshot', `${out}/snapshot.cjs`], { stdio: ['ignore', 'ignore', 'pipe'] });
const blob = (await stat(`${out}/weft.blob`)).size;
process.stdout.write(`snapshot: dist/weft/weft.blob, ${(blob / 1048576).toFixed(1)} MiB, ${String(Math.round(performance.now() - snapshotStarted))} ms\n`);
