import { coreServices, definePlugin, describeError, type NftCounter, type PluginStatusReport, selectsNode } from '@weft/core';
import {
  DEFAULT_ROOTS,
  type EndpointPod,
  localEndpoints,
  type NetnsRoots,
  nextDrainEnd,
  PodNetnsFinder,
  type RefusedService,
  setUpPods,
  SoonRetry,
  TableMemory,
  tunnelServices,
  vipStatus,
} from '@weft/service-tunnels';
import { GreTunnelConfig, LINK_PREFIX, RULE_PRIORITY, selectorLabels } from './config.js';
import { GreTunnelMetrics } from './metrics.js';
import { type IngressPlan, NFT_TABLE, planIngress, podState } from './planner.js';
import { loadSaved, type Saved, savedText, writeSaved } from './saved.js';

export { GreTunnelConfig, DEVICES, LINK_PREFIX, RULE_PRIORITY } from './config.js';
export { NFT_TABLE, planIngress, podState, type IngressPlan, type VipPlan } from './planner.js';

/** The route protocol of the plugin's routes (docs/plugins.md: weft's range is 100-199, this plugin's 121). */
export const ROUTE_PROTOCOL = 121;
/** One endpoint pod on this node, as the last reconcile left it. */
export type PodStatus = EndpointPod;

/** What `/api/gre-tunnel/status` serves. */
export interface GreTunnelStatus extends PluginStatusReport {
  readonly node: string;
  readonly ingress: boolean;
  readonly vips: readonly {
    readonly vip: string;
    readonly service: string;
    readonly affinity: string;
    /** The seed of the VIP's table (the same on every ingress node unless seedPerNode). */
    readonly seed: string;
    readonly tableSize: number;
    readonly buildMs: number;
    readonly bucketsMovedLastChange: number;
    /** Each endpoint with its packets and bytes through this node (its nftables counter, as of the last reconcile). */
    readonly endpoints: readonly { readonly address: string; readonly state: string; readonly slot: number; readonly buckets: number; readonly packets: number; readonly bytes: number }[];
  }[];
  readonly unslotted: readonly string[];
  readonly pods: readonly PodStatus[];
  readonly refused: readonly RefusedService[];
  readonly ignoredEndpoints: readonly { readonly service: string; readonly problems: readonly string[] }[];
}

/** Where the plugin looks for pods' namespaces; a test points it at a directory of its own. */
export interface GreTunnelOptions {
  readonly roots?: NetnsRoots;
}

/**
 * GRE service tunnels: a Service annotated `weft.io/tunnel: <VIP>` has its VIP delivered, as plain IP with the
 * client's address, into its endpoint pods. Ingress nodes pick an endpoint per flow from a Maglev table every ingress
 * node builds alike (so a flow that changes ingress node keeps its endpoint), pin it in a flow map, and send the
 * packet through one GRE device in metadata mode straight to the pod; in the pod, a GRE device of its own
 * decapsulates it and holds the VIP. See plugins/gre-tunnel/README.md. The plugin, with its namespace roots (the
 * default export uses the host's /proc and /run/netns).
 */
export function greTunnelPlugin(options: GreTunnelOptions = {}) {
  return definePlugin({
  name: 'gre-tunnel',
  apiVersion: '2',
  description: "brings a Service's external IP into its pods through GRE, Maglev-balanced alike on every ingress node",
  config: GreTunnelConfig,
  watches: ['services', 'endpointslices'],
  reads: (config) => ({ labels: selectorLabels(config), fields: ['internalAddresses', 'externalAddresses', 'podCIDRs'] }),
  kernel: { linkPrefix: LINK_PREFIX, routeProtocol: ROUTE_PROTOCOL, rulePriorities: [RULE_PRIORITY, RULE_PRIORITY] },
  // This host kernel has no GRE: the plugin runs in the VM's lab (test/gre-tunnel.vm.test.ts), with a config.
  lab: { enabled: false },
  deps: {
    logger: coreServices.logger,
    metrics: coreServices.metrics,
    cluster: coreServices.cluster,
    kernel: coreServices.kernel,
    state: coreServices.state,
    clock: coreServices.clock,
  },
  async setup({ config, dryRun, deps: { logger, metrics, cluster, kernel, state, clock } }) {
    await kernel.require('gre', 'nftables');
    const saved: Saved = await loadSaved(state, logger);
    let slots = saved.slots;
    let pods = new Map(saved.pods);
    let savedAs = savedText(saved);
    const tables = new TableMemory();
    const roots = options.roots ?? DEFAULT_ROOTS;
    const finder = new PodNetnsFinder(async (name) => {
      const found = await kernel.namespace(`${roots.runNetns}/${name}`).interfaces();
      return found.flatMap((i) => i.addresses.map((a) => a.slice(0, a.lastIndexOf('/'))));
    }, roots);
    const m = new GreTunnelMetrics(metrics);
    let last: { plan: IngressPlan | undefined; ingress: boolean; pods: PodStatus[]; refused: RefusedService[]; ignored: GreTunnelStatus['ignoredEndpoints']; counters: ReadonlyMap<string, NftCounter> } | undefined;
    let refusedLogged = '';
    /** Endpoint pods not found (or failing) are looked for again soon, then at resyncs. */
    const retry = new SoonRetry();

    const save = async () => {
      const text = savedText({ slots, pods });
      if (text === savedAs || dryRun) return;
      await writeSaved(state, text);
      savedAs = text;
    };

    const status = (): GreTunnelStatus => {
      const node = cluster.current().self.name;
      if (!last) return { converged: false, summary: 'not reconciled yet', node, ingress: false, vips: [], unslotted: [], pods: [], refused: [], ignoredEndpoints: [] };
      const counters = last.counters;
      const vips = (last.plan?.vips ?? []).map((v) => vipStatus(v, counters, tables.moved));
      const bad = last.pods.filter((p) => p.state !== 'ready').length;
      const parts = [
        ...(last.ingress ? [`ingress: ${String(vips.length)} VIP(s), ${String(new Set(vips.flatMap((v) => v.endpoints.map((e) => e.address))).size)} endpoint(s)`] : []),
        `${String(last.pods.length - bad)}/${String(last.pods.length)} pod(s) ready`,
        ...(last.refused.length > 0 ? [`${String(last.refused.length)} refused`] : []),
      ];
      return {
        converged: bad === 0 && (last.plan?.unslotted.length ?? 0) === 0,
        summary: parts.join(', '),
        node,
        ingress: last.ingress,
        vips,
        unslotted: last.plan?.unslotted ?? [],
        pods: last.pods,
        refused: last.refused,
        ignoredEndpoints: last.ignored,
      };
    };

    return {
      status,
      async reconcile({ view }) {
        const { services, refused } = tunnelServices(view, { encap: 'gre', unmarked: config.serveUnmarked });
        const refusedKey = JSON.stringify(refused);
        if (refusedKey !== refusedLogged) {
          for (const r of refused) logger.warn({ service: `${r.namespace}/${r.name}`, reason: r.reason }, 'tunnelled Service refused');
          refusedLogged = refusedKey;
        }
        const self = view.self;
        const ingress = selectsNode(config.ingress.nodeSelector, self.labels);
        let plan: IngressPlan | undefined;
        let requeueAfter: number | undefined;
        let counters: ReadonlyMap<string, NftCounter> = new Map();
        if (ingress) {
          plan = planIngress(services, config, { self: self.name, now: clock.now(), previousSlots: slots, previousTables: tables.tables });
          tables.update(plan.vips);
          // Slots are saved before the kernel uses them: after a crash, a flow pinned to a slot finds the same pod.
          slots = plan.slots;
          await save();
          await kernel.apply(plan.desired);
          counters = await kernel.nftCounters('inet', NFT_TABLE).catch((err: unknown) => {
            logger.debug({ err: describeError(err) }, 'cannot read the endpoint counters');
            return new Map<string, NftCounter>();
          });
          // A draining endpoint's timeout is a reason to come back.
          requeueAfter = nextDrainEnd(plan.slots, config.drainTimeout, clock.now());
        } else {
          await kernel.apply({});
          tables.clear();
        }

        // Endpoint pods on this node: the VIPs of their Services, in their own namespaces. One pod's failure is its own.
        const { pods: podStatus, setUp } = await setUpPods(
          localEndpoints(services, self.name),
          pods,
          finder,
          (path, _address, vips) => kernel.namespace(path).apply(podState(vips)).then(() => undefined),
          (path) => kernel.namespace(path).apply({}).then(() => undefined),
        );
        pods = setUp;
        await save();

        const ignored = services.filter((s) => s.ignored.length > 0).map((s) => ({ service: `${s.namespace}/${s.name}`, problems: s.ignored }));
        last = { plan, ingress, pods: podStatus, refused, ignored, counters };
        const count = (state: PodStatus['state']) => podStatus.filter((p) => p.state === state).length;
        m.update(plan, refused.length, { ready: count('ready'), missing: count('missing'), failed: count('failed') }, tables.moved);
        const soon = retry.next(podStatus.filter((p) => p.state !== 'ready').map((p) => p.address), clock.monotonic());
        if (soon !== undefined) requeueAfter = Math.min(requeueAfter ?? soon, soon);
        return requeueAfter === undefined ? undefined : { requeueAfter };
      },
      async stop({ cleanup }) {
        if (!cleanup) return;
        await kernel.apply({});
        for (const path of pods.keys()) await kernel.namespace(path).apply({}).catch(() => undefined);
        pods = new Map();
        slots = new Map();
        await save();
      },
    };
  },
});
}

export default greTunnelPlugin();
