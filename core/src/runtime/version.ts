import { readFileSync } from 'node:fs';

/** weft's version, from @weft/core's package.json. */
export const WEFT_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
