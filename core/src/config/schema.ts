import { cidr, describeValue, duration, intInRange, ipAddress, port, z } from '../api/schema.js';

/** The default config file; a mounted ConfigMap in a cluster. */
export const DEFAULT_CONFIG_PATH = '/etc/weft/weft.yaml';

const LABELS = z.record(z.string(), z.string());

const NodeSection = z
  .strictObject({
    name: z.string().min(1).optional().meta({ description: 'this node; default $NODE_NAME, else the host name' }),
    stateDir: z.string().min(1).default('/var/lib/weft').meta({ description: 'where plugins keep state (keys, addresses)' }),
  })
  .prefault({});

/** What a node says about itself, wherever it is declared: the fields of a Node object weft reads. */
const NodeFacts = z.strictObject({
  internalAddresses: z.array(ipAddress()).default([]),
  externalAddresses: z.array(ipAddress()).default([]),
  podCIDRs: z.array(cidr()).default([]),
  labels: LABELS.default({}),
  annotations: LABELS.default({}),
  ready: z.boolean().default(true),
});

/** A node declared in the config (the `static` discovery source). */
export const StaticNode = NodeFacts.extend({ name: z.string().min(1) });
export type StaticNode = z.output<typeof StaticNode>;

const ServicePort = z.strictObject({ name: z.string().optional(), protocol: z.enum(['TCP', 'UDP', 'SCTP']).default('TCP'), port: port() });
/** A Service as a node document carries it (the tunnel plugins read these). */
export const ServiceDoc = z.strictObject({
  namespace: z.string().min(1).default('default'),
  name: z.string().min(1),
  annotations: LABELS.default({}),
  clusterIPs: z.array(ipAddress()).default([]),
  externalIPs: z.array(ipAddress()).default([]),
  loadBalancerIPs: z.array(ipAddress()).default([]),
  ports: z.array(ServicePort).default([]),
  uid: z.string().min(1).max(64).optional(),
});
/** An EndpointSlice as a node document carries it. */
export const EndpointSliceDoc = z.strictObject({
  namespace: z.string().min(1).default('default'),
  name: z.string().min(1),
  serviceName: z.string().min(1),
  addressType: z.enum(['IPv4', 'IPv6', 'FQDN']).default('IPv4'),
  endpoints: z
    .array(
      z.strictObject({
        addresses: z.array(z.string().min(1)).min(1),
        ready: z.boolean().default(true),
        serving: z.boolean().optional(),
        terminating: z.boolean().optional(),
        nodeName: z.string().optional(),
        targetPod: z.strictObject({ namespace: z.string(), name: z.string() }).optional(),
      }),
    )
    .default([]),
});

/** What this node says about itself in the `directory` source (its document adds its name). */
const SelfDoc = NodeFacts.extend({
  services: z.array(ServiceDoc).default([]),
  endpointSlices: z.array(EndpointSliceDoc).default([]),
});

/** One node's document in the `directory` source (`<name>.yaml`). */
export const NodeDocument = SelfDoc.extend({ name: z.string().min(1) });
export type NodeDocument = z.output<typeof NodeDocument>;

const DirectorySection = z
  .strictObject({
    path: z.string().min(1).default('/var/lib/weft/nodes').meta({ description: 'the folder of node documents, shared by every agent' }),
    rescan: duration({ min: 100 }).prefault('10s').meta({ description: 'read the folder at least this often, in case a change event was missed' }),
    self: SelfDoc.prefault({}).meta({ description: "this node's document: addresses, pod CIDRs, labels (and services for the tunnel plugins)" }),
    maxDocumentBytes: intInRange(1024, 64 * 1024 * 1024).default(256 * 1024).meta({ description: 'a node document bigger than this is not read' }),
    maxAliases: intInRange(0, 10_000).default(16).meta({ description: 'YAML aliases (*name) a node document may hold' }),
    maxDepth: intInRange(2, 1000).default(16).meta({ description: 'how deep maps and sequences may nest in a node document' }),
  })
  .prefault({});
export type DirectorySettings = z.output<typeof DirectorySection>;

const KubernetesSection = z
  .strictObject({
    kubeconfig: z
      .string()
      .min(1)
      .nullable()
      .default(null)
      .meta({ description: 'a kubeconfig file; null: in-cluster (service account) when in a pod, else $KUBECONFIG or ~/.kube/config' }),
    backoffInitial: duration({ min: 10 }).prefault('1s').meta({ description: 'first delay before restarting a failed list or watch' }),
    backoffMax: duration({ min: 10 }).prefault('30s').meta({ description: 'cap of that delay' }),
  })
  .prefault({});
export type KubernetesSettings = z.output<typeof KubernetesSection>;

const DiscoverySection = z
  .strictObject({
    source: z
      .enum(['static', 'directory', 'kubernetes'], { error: (iss) => `expected one of static, directory, kubernetes, got ${describeValue(iss.input)}` })
      .prefault('static')
      .meta({ description: 'where nodes come from: `static`, the nodes listed here; `directory`, a folder of node documents; `kubernetes`, the API server' }),
    static: z.strictObject({ nodes: z.array(StaticNode).default([]) }).prefault({}),
    directory: DirectorySection,
    kubernetes: KubernetesSection,
  })
  .prefault({});

const ClusterSection = z
  .strictObject({
    podNetworks: z
      .array(cidr())
      .default([])
      .meta({ description: "where every node's pod CIDR must lie (kube-controller-manager's --cluster-cidr); []: not declared" }),
    serviceNetworks: z.array(cidr()).default([]).meta({ description: 'service networks (--service-cluster-ip-range): no pod CIDR may overlap them' }),
    underlayNetworks: z.array(cidr()).default([]).meta({ description: "the nodes' own networks, where known: no pod CIDR may overlap them" }),
    largestPodCIDR: z
      .strictObject({ ipv4: intInRange(0, 32).default(16), ipv6: intInRange(0, 128).default(48) })
      .prefault({})
      .meta({ description: 'the shortest prefix a node may claim as its pod CIDR, per family' }),
    maxPodCIDRsPerNode: intInRange(1, 1024).default(8).meta({ description: 'a node claiming more pod CIDRs has none of them accepted' }),
    maxAddressesPerNode: intInRange(1, 1024).default(16).meta({ description: 'a node claiming more addresses (internal and external) has none of them accepted' }),
    maxNodes: intInRange(1, 1_000_000).default(10_000).meta({ description: 'nodes in the view at most; beyond it the newest are left out' }),
  })
  .prefault({});
export type ClusterSettings = z.output<typeof ClusterSection>;

const NETNS = /^(\/[^\0\s]+|[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})$/;

const KernelSection = z
  .strictObject({
    netns: z
      .string()
      .regex(NETNS, { error: (iss) => `expected a namespace name (ip netns) or an absolute path like /proc/1234/ns/net, got ${describeValue(iss.input)}` })
      .nullable()
      .default(null)
      .meta({ description: "network namespace the agent manages: a name (ip netns), a path (/proc/PID/ns/net), or null for the agent's own" }),
    procSys: z
      .string()
      .regex(/^\/[^\0\s]*[^/\0\s]$/, { error: (iss) => `expected an absolute path like /proc/sys, got ${describeValue(iss.input)}` })
      .default('/proc/sys')
      .meta({
        description:
          "where the sysctls of the agent's own namespace are read and written: /proc/sys, or a writable mount of it (a container's /proc/sys is read-only; the DaemonSet mounts the host's /proc/sys/net at /host/proc/sys/net and sets /host/proc/sys)",
      }),
  })
  .prefault({});

const ReconcileSettings = {
  debounce: duration({ max: 60_000 }).meta({ description: 'wait this long after a trigger so that bursts merge' }),
  resync: duration({ min: 1000 }).meta({ description: 'reconcile at least this often, as insurance against drift' }),
  timeout: duration({ min: 10 }).meta({ description: 'abort a reconcile (its AbortSignal) after this long' }),
  backoffInitial: duration({ min: 1 }).meta({ description: 'first retry delay after an error' }),
  backoffMax: duration({ min: 1 }).meta({ description: 'cap of the exponential retry delay' }),
};

const ReconcileSection = z
  .strictObject({
    debounce: ReconcileSettings.debounce.prefault('100ms'),
    resync: ReconcileSettings.resync.prefault('30s'),
    timeout: ReconcileSettings.timeout.prefault('60s'),
    backoffInitial: ReconcileSettings.backoffInitial.prefault('500ms'),
    backoffMax: ReconcileSettings.backoffMax.prefault('5m'),
  })
  .prefault({});

/** Per-plugin overrides of the reconcile settings. */
export const ReconcileOverrides = z.strictObject({
  debounce: ReconcileSettings.debounce.optional(),
  resync: ReconcileSettings.resync.optional(),
  timeout: ReconcileSettings.timeout.optional(),
  backoffInitial: ReconcileSettings.backoffInitial.optional(),
  backoffMax: ReconcileSettings.backoffMax.optional(),
});

const LISTEN = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)|(localhost)):(\d{1,5})$/;

/** Splits `"0.0.0.0:9471"`, `"[::]:9471"` or `"localhost:0"` into host and port; `undefined` when invalid. */
export function parseListen(text: string): { host: string; port: number } | undefined {
  const m = LISTEN.exec(text);
  if (!m) return undefined;
  const port = Number(m[4]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2] ?? m[3]) as string, port };
}

const HttpSection = z
  .strictObject({
    listen: z
      .string()
      .refine((s) => parseListen(s) !== undefined, {
        error: (iss) => `expected host:port like "0.0.0.0:9471" or "[::]:9471", got ${describeValue(iss.input)}`,
      })
      .nullable()
      .default('0.0.0.0:9471')
      .meta({ description: 'address of /metrics, /healthz, /readyz and /api/<plugin>/; null turns the server off' }),
    socket: z
      .string()
      .regex(/^\/[^\0]{1,100}$/, { error: (iss) => `expected an absolute path of at most 100 characters, got ${describeValue(iss.input)}` })
      .nullable()
      .default(null)
      .meta({ description: 'also serve the same routes on this Unix socket (mode 0600); null: none' }),
    limits: z
      .strictObject({
        connections: intInRange(1, 100_000)
          .default(64)
          .meta({ description: 'open TCP connections at once; more are closed as they arrive (the Unix socket has no limit)' }),
        requestsPerSecond: intInRange(1, 1_000_000).default(20).meta({ description: 'requests a second from one client address; beyond: 429' }),
        burst: intInRange(1, 1_000_000).default(100).meta({ description: 'requests one client address may make at once after a quiet spell' }),
        totalRequestsPerSecond: intInRange(1, 1_000_000)
          .default(100)
          .meta({ description: 'requests a second from every client together; beyond: 429, so the reconcile loop keeps its pace under a flood' }),
      })
      .prefault({})
      .meta({ description: 'what the TCP listener serves at most (the root-only Unix socket is not limited)' }),
  })
  .prefault({});

const LogSection = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).prefault('info'),
    format: z
      .enum(['auto', 'json', 'pretty'])
      .prefault('auto')
      .meta({ description: 'auto: pretty in a terminal (when pino-pretty is installed), JSON otherwise' }),
  })
  .prefault({});

/** The keys of a plugin section that the host reads; the rest goes to the plugin's own schema. */
export const PluginHostSection = z.looseObject({
  enabled: z.boolean().default(true).meta({ description: 'false keeps the section but does not load the plugin' }),
  module: z
    .string()
    .min(1)
    .optional()
    .meta({ description: 'npm package name or path (relative to this file) of a third-party plugin' }),
  onBootFailure: z
    .enum(['abort', 'continue'])
    .prefault('abort')
    .meta({ description: 'abort: the agent exits when setup fails; continue: the others run without it' }),
  setupTimeout: duration({ min: 10 }).prefault('30s'),
  reconcile: ReconcileOverrides.optional(),
});
export type PluginHostSection = z.output<typeof PluginHostSection>;

/** What a key under `plugins:` may look like (as a plugin name). */
export const PLUGIN_KEY = /^[a-z][a-z0-9-]{0,39}$/;

/** The core part of the config; plugin sections are checked again by each plugin's schema. */
export const CoreConfigSchema = z.strictObject({
  node: NodeSection,
  cluster: ClusterSection,
  discovery: DiscoverySection,
  kernel: KernelSection,
  reconcile: ReconcileSection,
  http: HttpSection,
  log: LogSection,
  plugins: z
    .record(
      z.string().regex(PLUGIN_KEY, { error: (iss) => `expected a plugin name (${PLUGIN_KEY.source}), got ${describeValue(iss.input)}` }),
      // An empty section (`greeter:`) enables the plugin with its defaults.
      z.preprocess((v) => (v === null ? {} : v), PluginHostSection),
    )
    .default({}),
});

/** The validated core config. */
export type CoreConfig = z.output<typeof CoreConfigSchema>;
/** The validated reconcile settings, all in milliseconds. */
export type ReconcileSettings = CoreConfig['reconcile'];
