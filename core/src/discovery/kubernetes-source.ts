import type * as K8sModule from '@kubernetes/client-node';
import type { Informer, KubernetesObject, ObjectCache, V1EndpointSlice, V1Node, V1Service } from '@kubernetes/client-node';
import type { AnnotationPatch, ClusterView, EndpointSliceInfo, NodeInfo, NodeSource, ServiceInfo, Watchable } from '../api/cluster.js';
import { describeError } from '../api/errors.js';
import type { KubernetesSettings } from '../config/schema.js';
import type { Logger } from '../observe/logger.js';
import type { MetricsHub } from '../observe/metrics.js';
import { locationOf, makeView } from './view.js';

type K8s = typeof K8sModule;

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
  };
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
      ...(p.nodeName ? { nodeName: p.nodeName } : {}),
      ...(p.targetRef?.kind === 'Pod' && p.targetRef.name ? { targetPod: { namespace: p.targetRef.namespace ?? 'default', name: p.targetRef.name } } : {}),
    })),
  };
}

interface Watched {
  readonly resource: Watchable;
  readonly informer: Informer<KubernetesObject> & ObjectCache<KubernetesObject>;
  synced: boolean;
  /** An error reported while the first list was under way (the client resolves `start()` even when it failed). */
  startError: unknown;
  failures: number;
  restart: NodeJS.Timeout | undefined;
}

/**
 * The `kubernetes` source: informers (list + watch) on Nodes, and on Services and EndpointSlices when a plugin
 * watches them. The client library is imported only when this source is configured. Its informer stops for good on
 * a failed request: each is restarted with capped exponential backoff, keeping its last list meanwhile, so an API
 * outage leaves the view (and the data plane) as it was; when the API returns, the informer relists and the agent
 * reconciles once. Publishing is a JSON merge patch of the own Node's annotations.
 */
export class KubernetesNodeSource implements NodeSource {
  private k8s: K8s | undefined;
  private core: K8sModule.CoreV1Api | undefined;
  private readonly watched: Watched[] = [];
  private view: ClusterView;
  private onChange: ((view: ClusterView) => void) | undefined;
  private pending: NodeJS.Timeout | undefined;
  private stopped = false;
  private isSynced = false;

  constructor(
    private readonly selfName: string,
    private readonly settings: KubernetesSettings,
    private readonly logger: Logger,
    private readonly metrics?: MetricsHub,
  ) {
    this.view = makeView({ selfName, nodes: [], revision: 0 });
  }

  /** Resolves once every informer has listed (retrying with backoff while the API is unreachable). */
  async start(watches: ReadonlySet<Watchable>, onChange: (view: ClusterView) => void): Promise<void> {
    const k8s = await import('@kubernetes/client-node');
    this.k8s = k8s;
    const kc = new k8s.KubeConfig();
    if (this.settings.kubeconfig) kc.loadFromFile(this.settings.kubeconfig);
    else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    this.core = core;
    const discovery = kc.makeApiClient(k8s.DiscoveryV1Api);
    const lists: Record<Watchable, () => Promise<{ items: KubernetesObject[]; metadata?: { resourceVersion?: string } }>> = {
      nodes: () => core.listNode(),
      services: () => core.listServiceForAllNamespaces(),
      endpointslices: () => discovery.listEndpointSliceForAllNamespaces(),
    };
    for (const resource of ['nodes', 'services', 'endpointslices'] as const) {
      if (!watches.has(resource)) continue;
      const informer = k8s.makeInformer(kc, RESOURCES[resource], lists[resource]);
      const w: Watched = { resource, informer, synced: false, startError: undefined, failures: 0, restart: undefined };
      for (const verb of ['add', 'update', 'delete'] as const) {
        informer.on(verb, () => {
          this.metrics?.core.discoveryEvents.inc({ resource, type: verb });
          this.changed();
        });
      }
      informer.on('connect', () => {
        w.failures = 0;
        this.updateConnected();
      });
      informer.on('error', (err: unknown) => this.failed(w, err));
      this.watched.push(w);
    }
    this.onChange = onChange;
    await Promise.all(this.watched.map((w) => this.startInformer(w)));
    this.isSynced = true;
    this.rebuild();
  }

  current(): ClusterView {
    return this.view;
  }

  synced(): boolean {
    return this.isSynced;
  }

  /** A JSON merge patch of the own Node's annotations (`null` removes a key). Rejects when the API is unreachable. */
  async publish(patch: AnnotationPatch): Promise<void> {
    if (!this.k8s || !this.core) throw new Error('the kubernetes source has not started');
    await this.core.patchNode(
      { name: this.selfName, body: { metadata: { annotations: patch } } },
      this.k8s.setHeaderOptions('Content-Type', this.k8s.PatchStrategy.MergePatch),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.onChange = undefined;
    clearTimeout(this.pending);
    for (const w of this.watched) {
      clearTimeout(w.restart);
      await w.informer.stop().catch(() => undefined);
    }
    this.metrics?.core.discoveryConnected.set(0);
  }

  /** Starts (or restarts) one informer; on failure schedules the next try and waits for it. */
  private async startInformer(w: Watched): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      try {
        w.startError = undefined;
        await w.informer.start();
        if (w.startError !== undefined) throw w.startError instanceof Error ? w.startError : new Error(describeError(w.startError));
        w.synced = true;
        w.failures = 0;
        this.updateConnected();
        return;
      } catch (err) {
        // The first list failed: keep trying, the agent waits for a first view.
        const delay = this.backoff(++w.failures);
        this.logger.warn({ resource: w.resource, err: describeError(err), retryInMs: delay }, 'listing from the Kubernetes API failed; retrying');
        this.updateConnected(false);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** The client's informer stops for good on a failed request or a refused connection: restart it, with backoff. */
  private failed(w: Watched, err: unknown): void {
    if (!w.synced) {
      w.startError = err;
      return;
    }
    if (this.stopped || w.restart !== undefined) return;
    const delay = this.backoff(++w.failures);
    this.logger.warn({ resource: w.resource, err: describeError(err), retryInMs: delay }, 'Kubernetes watch failed; keeping the last view and restarting it');
    this.updateConnected(false);
    w.restart = setTimeout(() => {
      w.restart = undefined;
      if (this.stopped) return;
      // The client resolves start() even when the list failed; a failure shows as another scheduled restart.
      w.informer.start().then(
        () => {
          if (w.restart !== undefined) return;
          w.failures = 0;
          this.updateConnected();
          this.changed();
        },
        (e: unknown) => this.failed(w, e),
      );
    }, delay);
  }

  private backoff(n: number): number {
    const base = Math.min(this.settings.backoffMax, this.settings.backoffInitial * 2 ** Math.min(n - 1, 20));
    return Math.round(base * (0.5 + 0.5 * Math.random()));
  }

  private updateConnected(connected = true): void {
    this.metrics?.core.discoveryConnected.set(connected && this.watched.every((w) => w.failures === 0) ? 1 : 0);
  }

  /** Events come in bursts (a relist replays every object): one new snapshot per burst. */
  private changed(): void {
    if (!this.isSynced || this.pending !== undefined) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.rebuild();
    }, 10);
  }

  private rebuild(): void {
    const list = <T>(resource: Watchable) => (this.watched.find((w) => w.resource === resource)?.informer.list() ?? []) as T[];
    const nodes = list<V1Node>('nodes').map(nodeInfo).filter((n) => n.name !== '');
    const next = makeView({
      selfName: this.selfName,
      nodes,
      services: this.watched.some((w) => w.resource === 'services') ? list<V1Service>('services').map(serviceInfo) : undefined,
      endpointSlices: this.watched.some((w) => w.resource === 'endpointslices') ? list<V1EndpointSlice>('endpointslices').map(endpointSliceInfo) : undefined,
      revision: this.view.revision + 1,
    });
    this.metrics?.core.discoveryNodes.set(nodes.length);
    if (JSON.stringify({ ...next, revision: 0 }) === JSON.stringify({ ...this.view, revision: 0 })) return;
    this.view = next;
    this.onChange?.(next);
  }
}
