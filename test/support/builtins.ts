// Imported by a test that builds a lab or loads a config naming built-in plugins: the core knows no plugin by name,
// so the test process names weft's own, as the distribution's bin does (distribution/bin/weft.js).
import { usePluginCatalog } from '../../core/src/cli/index.js';
import { BUILTIN_PLUGINS } from '../../distribution/src/index.js';

usePluginCatalog(BUILTIN_PLUGINS);
