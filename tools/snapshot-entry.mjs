// The agent's startup snapshot's entry (tools/bundle.mjs builds dist/weft/weft.blob from it; `node --snapshot-blob
// dist/weft/weft.blob run …` starts from it): weft as tools/bundle-entry.mjs ships it, with everything `weft run`
// loads already evaluated — the CLI, the agent, the config schemas and the built-in plugins — so that a start
// deserialises a heap instead of compiling and evaluating ~1.5 MiB of modules (docs/performance.md, "Start-up").
import process from 'node:process';
import v8 from 'node:v8';
import { main, usePluginCatalog } from '../core/dist/cli/index.js';
import '../core/dist/runtime/run.js';
import { BUILTIN_PLUGINS } from '../distribution/dist/index.js';

usePluginCatalog(BUILTIN_PLUGINS);
// The catalog's plugins load lazily; load each once here so that their modules are in the snapshot.
let loaded = Promise.resolve();
for (const plugin of BUILTIN_PLUGINS) if (plugin.status === 'available') loaded = loaded.then(() => plugin.load?.()).then(() => undefined);

loaded.then(
  () => {
    v8.startupSnapshot.setDeserializeMainFunction(() => {
      // A snapshot's process.argv has no script: [node, ...arguments]. The CLI reads [node, script, ...arguments].
      main([process.execPath, 'weft', ...process.argv.slice(1)]).then(
        (code) => process.exit(code),
        (err) => {
          process.stderr.write(`weft: ${String(err)}\n`);
          process.exit(1);
        },
      );
    });
  },
  (err) => {
    process.stderr.write(`the snapshot's plugins did not load: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
