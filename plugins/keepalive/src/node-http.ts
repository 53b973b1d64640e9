import { createRequire } from 'node:module';
import type * as NodeHttp from 'node:http';

/**
 * `node:http`, loaded with `require`. An ES import of it makes a module facade that reads every export once, and one
 * export (`WebSocket`) is a getter that loads Node's own undici, http2 and WebIDL: ~14 MiB and tens of milliseconds at
 * every start, for nothing weft uses. Take http's values from here; its types from `node:http` as usual.
 */
export const http = createRequire(import.meta.url)('node:http') as typeof NodeHttp;
