// Errors are the lowest layer of the core (src/errors.ts): the kernel driver throws them too, and the kernel sits
// below the plugin API. This is their place in the API.
export * from '../errors.js';
