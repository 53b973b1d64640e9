import type { V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { Counter } from 'prom-client';
import type { AnnotationPatch, ClusterView, EndpointSliceInfo, NodeInfo, NodeSource, ServiceInfo, Watchable } from '../api/cluster.js';
import { describeError } from '../api/errors.js';
import type { KubernetesSettings } from '../config/schema.js';
import type { Logger } from '../observe/logger.js';
import type { MetricsHub } from '../observe/metrics.js';
import { KubeApiError, KubeClient, type KubeObject } from './kube-client.js';
import { type NodeReads, nodeNarrower, sameData } from './reads.js';
import { bareNode, locationOf, makeView } from './view.js';
import { backoffDelay } from '../reconcile/backoff.js';

const RESOURCES: Record<Watchable, string> = {
  nodes: '/api/v1/nodes',
  services: '/api/v1/services',
  endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
};

/** A V1Node as weft sees it. */
export function nodeInfo(n: V1Node): NodeInfo {
  const addresses = n.status?.addresses ?? [];
  const labels = n.metadata?.labels ?? {};
  const annotations = n.metadata?.annotations ?? {};
  const podCIDRs = n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
  return {
    name: n.metadata?.name ?? '',
    internalAddresses: addresses.filter((a) => a.type === 'InternalIP').map((a) => a.address),
    externalAddresses: addresses.filter((a) => a.type === 'ExternalIP').map((a) => a.address),
    podCIDRs,
    labels,
    annotations,
    ready: (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
    location: locationOf(labels, annotations),
    createdAt: createdAt(n.metadata?.creationTimestamp),
  };
}

/**
 * `metadata.creationTimestamp` in milliseconds: set by the API server, never by the node. Lists give it as text,
 * the client library as a Date; an object without one (never from a real API server) counts as made now, the newest.
 */
function createdAt(value: Date | string | undefined): number {
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : Number.NaN;
  return Number.isFinite(ms) ? ms : Date.now();
}

/** A V1Service as weft sees it. */
export function serviceInfo(s: V1Service): ServiceInfo {
  const clusterIPs = (s.spec?.clusterIPs ?? (s.spec?.clusterIP ? [s.spec.clusterIP] : [])).filter((ip) => ip !== 'None');
  return {
    namespace: s.metadata?.namespace ?? 'default',
    name: s.metadata?.name ?? '',
    annotations: s.metadata?.annotations ?? {},
    clusterIPs,
    externalIPs: s.spec?.externalIPs ?? [],
    loadBalancerIPs: (s.status?.loadBalancer?.ingress ?? []).flatMap((i) => (i.ip ? [i.ip] : [])),
    ports: (s.spec?.ports ?? []).map((p) => ({ ...(p.name ? { name: p.name } : {}), protocol: (p.protocol ?? 'TCP') as 'TCP' | 'UDP' | 'SCTP', port: p.port })),
    ...(s.metadata?.uid ? { uid: s.metadata.uid } : {}),
    ...(s.metadata?.creationTimestamp ? { createdAt: createdAt(s.metadata.creationTimestamp) } : {}),
  };
}

/** A discovery.k8s.io/v1 EndpointSlice as weft sees it. */
export function endpointSliceInfo(e: V1EndpointSlice): EndpointSliceInfo {
  return {
    namespace: e.metadata?.namespace ?? 'default',
    name: e.metadata?.name ?? '',
    serviceName: e.metadata?.labels?.['kubernetes.io/service-name'] ?? '',
    addressType: e.addressType as 'IPv4' | 'IPv6' | 'FQDN',
    endpoints: (e.endpoints ?? []).map((p) => ({
      addresses: p.addresses,
      ready: p.conditions?.ready ?? true,
      ...(p.conditions?.serving !== undefined ? { serving: p.conditions.serving } : {}),
      ...(p.conditions?.terminating !== undefined ? { terminating: p.conditions.terminating } : {}),
      ...(p.nodeName ? { nodeName: p.nodeName } : {}),
      ...(p.targetRef?.kind === 'Pod' && p.targetRef.name ? { targetPod: { namespace: p.targetRef.namespace ?? 'default', name: p.targetRef.name } } : {}),
    })),
  };
}

/** What weft makes of one watched object. */
type Info = NodeInfo | ServiceInfo | EndpointSliceInfo;

/**
 * One watched collection: the info of each object as last listed and watched, by namespace/name. The objects
 * themselves are not kept (a real Node object, with its images and managed fields, is many times its info).
 */
interface Watched {
  readonly resource: Watchable;
  readonly objects: Map<string, Info>;
  /** weft_discovery_events_total's children for this resource, by event type (made once). */
  readonly counted: Partial<Record<'add' | 'update' | 'delete', Counter.Internal>>;
  resourceVersion: string;
  /** Consecutive failed requests; 0 while connected. */
  failures: number;
  /** Aborts the live watch (on stop). */
  abort: AbortController | undefined;
}

const keyOf = (o: KubeObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** Ends a watch stream: `closed` resumes from the last version, `expired` relists, an error restarts with backoff. */
type WatchEnd = 'closed' | 'expired';

/**
 * The `kubernetes` source: a list + watch loop (a reflector, as client-go calls it) on Nodes, and on Services and
 * EndpointSlices when a plugin watches them. Only the client library's `Watch` is loaded (see kube-client.ts),
 * and only when this source is configured. A watch that closes resumes from its last resourceVersion; a `410 Gone`
 * relists; a failed request (refused connection, non-200 answer) is retried with capped exponential backoff and
 * then relists, keeping the last view meanwhile, so an API outage leaves the view (and the data plane) as it was;
 * when the API returns, the changes made meanwhile arrive and the agent reconciles once. Publishing is a JSON merge
 * patch of the own Node's annotations.
 */
/** While the API server does not answer, how often an agent asks whether it is back (plus up to as much jitter). */
const PROBE_EVERY_MS = 250;

export class KubernetesNodeSource implements NodeSource {
  private client: KubeClient | undefined;
  private readonly watched: Watched[] = [];
  private view: ClusterView;
  private onChange: ((view: ClusterView) => void) | undefined;
  private pending: NodeJS.Timeout | undefined;
  private readonly stopping = new AbortController();
  private isSynced = false;
  private readonly loops: Promise<void>[] = [];
  /** The latest question whether the API server answers (see reachable()). */
  private lastProbe: { at: number; pending: boolean; answer: Promise<boolean> } | undefined;
  /** When the API stopped answering (unix ms), while it does not. */
  private disconnectedSince: number | undefined;
  /** What the plugins read of the other nodes; the rest is left out of their infos (see start()). */
  private narrow: (node: NodeInfo) => NodeInfo = (node) => node;
  /** This node while the API has no Node object for it: one object, so that views without it compare equal. */
  private readonly bareSelf: NodeInfo;

  constructor(
    private readonly selfName: string,
    private readonly settings: KubernetesSettings,
    private readonly logger: Logger,
    private readonly metrics?: MetricsHub,
    /** How long the server keeps one watch open before the source resumes it (client-go picks 5–10 min). */
    private readonly watchSeconds = 300 + Math.floor(Math.random() * 300),
  ) {
    this.bareSelf = bareNode(selfName);
    this.view = makeView({ selfName, nodes: [], revision: 0, fallbackSelf: this.bareSelf });
  }

  /**
   * Resolves once every collection has listed (retrying with backoff while the API is unreachable). Of the other
   * nodes, only the annotations and labels in `reads` are kept: a change to any other is noticed, and dropped.
   */
  async start(watches: ReadonlySet<Watchable>, onChange: (view: ClusterView) => void, reads?: NodeReads): Promise<void> {
    this.narrow = nodeNarrower(reads, this.selfName);
    this.client = await KubeClient.load(this.settings.kubeconfig ?? undefined, this.logger);
    this.logger.debug({ credentials: this.client.origin, server: this.client.server }, 'kubernetes source');
    for (const resource of ['nodes', 'services', 'endpointslices'] as const) {
      if (watches.has(resource)) this.watched.push({ resource, objects: new Map(), counted: {}, resourceVersion: '', failures: 0, abort: undefined });
    }
    await Promise.all(this.watched.map((w) => this.firstList(w)));
    if (this.stopped) return;
    this.onChange = onChange;
    this.isSynced = true;
    this.updateConnected();
    this.rebuild();
    for (const w of this.watched) this.loops.push(this.run(w));
  }

  current(): ClusterView {
    return this.view;
  }

  synced(): boolean {
    return this.isSynced;
  }

  /** A JSON merge patch of the own Node's annotations (`null` removes a key). Rejects when the API is unreachable. */
  async publish(patch: AnnotationPatch): Promise<void> {
    if (!this.client) throw new Error('the kubernetes source has not started');
    await this.client.mergePatch(`/api/v1/nodes/${encodeURIComponent(this.selfName)}`, { metadata: { annotations: patch } });
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.onChange = undefined;
    clearTimeout(this.pending);
    for (const w of this.watched) w.abort?.abort();
    await Promise.all(this.loops);
    this.metrics?.core.discoveryConnected.set(0);
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /** The first list of a collection: the agent waits for it, so keep trying. */
  private async firstList(w: Watched): Promise<void> {
    while (!this.stopped) {
      try {
        await this.list(w);
        w.failures = 0;
        return;
      } catch (err) {
        if (this.stopped) return;
        const delay = this.backoff(++w.failures);
        this.logger.warn({ resource: w.resource, err: describeError(err), retryInMs: delay }, 'listing from the Kubernetes API failed; retrying');
        this.updateConnected();
        await this.untilRetry(delay);
      }
    }
  }

  /** Watch, resume, relist, back off — until stopped. */
  private async run(w: Watched): Promise<void> {
    let relist = false;
    while (!this.stopped) {
      try {
        if (relist) {
          await this.list(w);
          relist = false;
          if (w.failures > 0) {
            this.logger.info({ resource: w.resource }, 'the Kubernetes API is back; relisted');
            w.failures = 0;
            this.updateConnected();
          }
        }
        const started = performance.now();
        const end = await this.watchOnce(w);
        if (end === 'expired') {
          this.logger.info({ resource: w.resource }, 'watch version expired (410 Gone); relisting');
          relist = true;
        } else if (performance.now() - started < 1000) {
          // A server that closes every watch at once must not be hammered.
          await this.sleep(1000);
        }
      } catch (err) {
        if (this.stopped) return;
        const delay = this.backoff(++w.failures);
        this.logger.warn({ resource: w.resource, err: describeError(err), retryInMs: delay }, 'Kubernetes watch failed; keeping the last view and retrying');
        this.updateConnected();
        relist = true;
        await this.untilRetry(delay);
      }
    }
  }

  /** Lists a collection and replaces what the source holds, counting each difference as an event. */
  private async list(w: Watched): Promise<void> {
    const client = this.client as KubeClient;
    const { items, resourceVersion } = await client.list(RESOURCES[w.resource], this.stopping.signal);
    const listed = new Set<string>();
    for (const o of items) {
      const k = keyOf(o);
      listed.add(k);
      const change = this.hold(w, k, o);
      if (change !== undefined) this.event(w, change, true);
    }
    for (const k of w.objects.keys()) {
      if (listed.has(k)) continue;
      w.objects.delete(k);
      this.event(w, 'delete', true);
    }
    w.resourceVersion = resourceVersion;
  }

  /**
   * Keeps what weft makes of an object. An info that comes out equal to the one held leaves that one in place: an
   * unchanged node is the same object from view to view, and a change to nothing weft keeps (a kubelet's status
   * heartbeat, an annotation no plugin reads) makes no new view at all. Says what changed: nothing (undefined), or
   * an object added or updated.
   */
  private hold(w: Watched, key: string, o: KubeObject): 'add' | 'update' | undefined {
    const fresh = this.infoOf(w.resource, o);
    const old = w.objects.get(key);
    if (old !== undefined && sameData(old, fresh)) return undefined;
    w.objects.set(key, fresh);
    return old === undefined ? 'add' : 'update';
  }

  private infoOf(resource: Watchable, o: KubeObject): Info {
    switch (resource) {
      case 'nodes':
        return this.narrow(nodeInfo(o));
      case 'services':
        return serviceInfo(o);
      case 'endpointslices':
        return endpointSliceInfo(o as unknown as V1EndpointSlice);
    }
  }

  /** One watch stream from the collection's version, applied to what the source holds, until it ends. */
  private watchOnce(w: Watched): Promise<WatchEnd> {
    const client = this.client as KubeClient;
    return new Promise<WatchEnd>((resolve, reject) => {
      let expired = false;
      let failure: Error | undefined;
      const onEvent = (type: string, object: KubeObject) => {
        const version = object.metadata?.resourceVersion;
        switch (type) {
          case 'ADDED':
          case 'MODIFIED': {
            // Every event counts; only one that changed what the source holds makes a new view.
            const change = this.hold(w, keyOf(object), object);
            this.event(w, change ?? 'update', change !== undefined);
            break;
          }
          case 'DELETED':
            if (w.objects.delete(keyOf(object))) this.event(w, 'delete', true);
            break;
          case 'BOOKMARK':
            break;
          case 'ERROR': {
            const code = (object as { code?: unknown }).code;
            if (code === 410) {
              expired = true;
              w.abort?.abort();
              return;
            }
            const message = (object as { message?: unknown }).message;
            failure = new KubeApiError(typeof code === 'number' ? code : 500, `watch ${RESOURCES[w.resource]}: ${typeof message === 'string' ? message : 'an ERROR event'}`);
            w.abort?.abort();
            return;
          }
          default:
            return;
        }
        if (version) w.resourceVersion = version;
        if (w.failures > 0) {
          w.failures = 0;
          this.updateConnected();
        }
      };
      const done = (err: unknown) => {
        w.abort = undefined;
        if (failure !== undefined) reject(failure);
        else if (expired) resolve('expired');
        else if (err && !this.stopped) reject(err instanceof Error ? err : new Error(describeError(err)));
        else resolve('closed');
      };
      client.watch(RESOURCES[w.resource], w.resourceVersion, this.watchSeconds, onEvent, done).then(
        (controller) => {
          // done may already have run (a refused connection); only a live stream keeps its controller.
          if (this.stopped) controller.abort();
          else if (!controller.signal.aborted) w.abort = controller;
        },
        (err: unknown) => reject(err instanceof Error ? err : new Error(describeError(err))),
      );
    });
  }

  /** Counts an event; one that changed what the source holds makes a new view. */
  private event(w: Watched, type: 'add' | 'update' | 'delete', changed: boolean): void {
    if (this.metrics) (w.counted[type] ??= this.metrics.core.discoveryEvents.labels({ resource: w.resource, type })).inc();
    if (changed) this.changed();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve();
      const t = setTimeout(resolve, ms);
      this.stopping.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });
  }

  /**
   * Waits out a backoff — but while the server does not answer at all, asks every quarter second (plus up to 0.25 s
   * of jitter, so that a cluster's agents do not come back in one instant) whether it is back, and retries at once
   * when it is: after an outage the source is back within half a second, not after a backoff of up to `backoffMax`
   * (a node that joined during the outage needs two such hops: its own agent's, then its peers'). A server that
   * answers but fails (an HTTP error) gets the whole backoff.
   */
  private async untilRetry(delayMs: number): Promise<void> {
    const end = performance.now() + delayMs;
    if (!this.client || (await this.reachable())) return this.sleep(delayMs);
    while (!this.stopped && performance.now() < end) {
      await this.sleep(Math.min(PROBE_EVERY_MS * (1 + Math.random()), Math.max(0, end - performance.now())));
      if (this.stopped || performance.now() >= end) return;
      if (await this.reachable()) return;
    }
  }

  /**
   * Whether the API server answers; one question at a time for all the collections' loops, and one answer kept for
   * {@link PROBE_EVERY_MS}, so that an agent asks a server that is down at most four times a second, however many
   * collections it watches. A refused connection costs the server nothing; a server that is starting answers
   * `/version` before anything else.
   */
  private reachable(): Promise<boolean> {
    const now = performance.now();
    if (this.lastProbe && (this.lastProbe.pending || now - this.lastProbe.at < PROBE_EVERY_MS)) return this.lastProbe.answer;
    const probe: { at: number; pending: boolean; answer: Promise<boolean> } = { at: now, pending: true, answer: Promise.resolve(false) };
    probe.answer = (this.client as KubeClient).reachable(1000, this.stopping.signal).then((ok) => {
      probe.pending = false;
      probe.at = performance.now();
      return ok;
    });
    this.lastProbe = probe;
    return probe.answer;
  }

  private backoff(n: number): number {
    return backoffDelay(n, this.settings.backoffInitial, this.settings.backoffMax);
  }

  private updateConnected(): void {
    const connected = this.watched.every((w) => w.failures === 0);
    this.metrics?.core.discoveryConnected.set(connected ? 1 : 0);
    if (connected) this.disconnectedSince = undefined;
    else this.disconnectedSince ??= Date.now();
  }

  /** Whether every list and watch is up; when not, since when (wall time, to show) the last view is served. */
  health(): { connected: boolean; since?: number } {
    return this.disconnectedSince === undefined ? { connected: true } : { connected: false, since: this.disconnectedSince };
  }

  /** Events come in bursts (a relist replays every object): one new snapshot per burst. */
  private changed(): void {
    if (!this.isSynced || this.pending !== undefined) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.rebuild();
    }, 10);
  }

  /**
   * A new view of what the source holds. The infos are those held (see hold()): an unchanged node is the same object
   * from view to view, so everything downstream (claims, each plugin's `reads`) compares by identity — a change costs
   * about what the changed node costs, not what the whole cluster costs (1,000 nodes: an unrelated annotation cost an
   * agent ~38 ms when every node's info was made and compared again).
   */
  private rebuild(): void {
    const prev = this.view;
    const held = <T extends Info>(resource: Watchable): T[] | undefined => {
      const w = this.watched.find((x) => x.resource === resource);
      return w === undefined ? undefined : ([...w.objects.values()] as T[]);
    };
    const nodes = (held<NodeInfo>('nodes') ?? []).filter((n) => n.name !== '');
    const services = held<ServiceInfo>('services');
    const endpointSlices = held<EndpointSliceInfo>('endpointslices');
    const next = makeView({ selfName: this.selfName, nodes, services, endpointSlices, revision: prev.revision + 1, fallbackSelf: this.bareSelf });
    if (next.self === prev.self && sameItems(next.nodes, prev.nodes) && sameItems(next.services, prev.services) && sameItems(next.endpointSlices, prev.endpointSlices)) return;
    this.view = next;
    this.onChange?.(next);
  }
}

/** Whether two lists hold the same objects in the same order. */
function sameItems<T>(a: readonly T[] | undefined, b: readonly T[] | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]));
}
