import { createRequire } from 'node:module';
import type * as NodeHttp from 'node:http';

let loaded: typeof NodeHttp | undefined;

/**
 * `node:http`, loaded with `require` on first use. An ES import of it makes a module facade that reads every export
 * once, and one export (`WebSocket`) is a getter that loads Node's own undici, http2 and WebIDL: ~14 MiB and tens of
 * milliseconds at every start, for nothing weft uses. On first use, not on import: the agent's startup snapshot
 * (tools/bundle.mjs) cannot hold http's parser. Take http's values from here; its types from `node:http` as usual.
 */
export function nodeHttp(): typeof NodeHttp {
  return (loaded ??= createRequire(import.meta.url)('node:http') as typeof NodeHttp);
}
