import { readFileSync } from 'node:fs';
import { BUNDLE } from '../build-info.js';

/** weft's version, from @weft/core's package.json (in the bundle: as it was built). */
export const WEFT_VERSION: string =
  BUNDLE?.version ?? (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
