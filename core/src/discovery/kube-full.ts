/**
 * What the full-client transport (kube-client.ts) loads, in one module: `@kubernetes/client-node`'s `KubeConfig`, its
 * `RequestContext` and the `undici` it speaks through. One module so that a bundle can carry it as one file beside
 * the agent (`dist/weft/kube-full.mjs`), loaded only for a kubeconfig the lean reader does not handle; the agent's
 * startup snapshot loads it from there (tools/bundle.mjs).
 */
export { KubeConfig } from '@kubernetes/client-node';
export { RequestContext } from '@kubernetes/client-node/dist/gen/http/http.js';
export { fetch } from 'undici';
