import type { NodeSource } from '../api/cluster.js';
import { createServiceRef } from '../api/services.js';
import type { HttpServer } from '../observe/http.js';
import type { Logger } from '../observe/logger.js';
import type { MetricsHub } from '../observe/metrics.js';

/** Services of the agent itself, registered once in its root container; plugins get per-plugin views of them. */
export const agentServices = {
  rootLogger: createServiceRef<Logger>('agent.rootLogger'),
  metricsHub: createServiceRef<MetricsHub>('agent.metricsHub'),
  httpServer: createServiceRef<HttpServer>('agent.httpServer'),
  nodeSource: createServiceRef<NodeSource>('agent.nodeSource'),
} as const;
