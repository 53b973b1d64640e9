/**
 * `@weft/core/lab`: the local lab as a library, for end-to-end tests and tools.
 *
 * ```ts
 * const lab = await Lab.up({ name: 'e2e', nodes: 3 });
 * try {
 *   await lab.exec('n1:pod', ['ping', '-c1', '198.19.2.10']);
 *   await lab.cut('n1', 'n2');
 * } finally {
 *   await lab.down();
 * }
 * ```
 */
export { AGENT_ENV, AGENT_NODE_FLAGS, DEFAULT_LAB_ROOT, inDefaultLab, Lab, LAB_HTTP_PORT, LAB_SETTINGS, type LabApiServerStatus, type LabNodeStatus, type LabService, type LabStatus, type LabUpOptions } from './lab.js';
export { checkLabOptions, LAB_API, LAB_CLIENT, LAB_LIMITS, labTopology, type LabDiscovery, type LabLocation, type LabNode, type LabPod, type LabOptions, type LabTopology } from './topology.js';
