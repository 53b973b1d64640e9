// Imported by a bench that builds a lab: the core knows no plugin by name, so the bench names weft's own, as the
// distribution's bin does (distribution/bin/weft.js).
import { usePluginCatalog } from '../core/dist/cli/index.js';
import { BUILTIN_PLUGINS } from '../distribution/dist/index.js';

usePluginCatalog(BUILTIN_PLUGINS);
