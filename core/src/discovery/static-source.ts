import type { StaticNode } from '../config/schema.js';
import { MemoryNodeSource } from './memory-source.js';
import { locationOf } from './view.js';

/**
 * The `static` discovery source: the nodes the config lists (this node is added by name when absent). Published
 * annotations land on the own node in memory, so plugins see their own values as they would from Kubernetes.
 */
export class StaticNodeSource extends MemoryNodeSource {
  constructor(selfName: string, declared: readonly StaticNode[]) {
    super(
      selfName,
      // The config is the operator's word: every declared node is as old as the cluster.
      declared.map((n) => ({ ...n, location: locationOf(n.labels, n.annotations), createdAt: 0 })),
    );
  }
}
