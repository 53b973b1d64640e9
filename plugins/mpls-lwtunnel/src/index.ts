import { canonicalIP, coreServices, definePlugin, describeError, type InterfaceInfo, type NftCounter, type PluginStatusReport, selectsNode } from '@weft/core';
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
import { LABELS_ANNOTATION, LINK_PREFIX, MplsLwtunnelConfig, RULE_PRIORITY, selectorLabels } from './config.js';
import { allocateLabels, type LabelBook, labelsText, parseLabels } from './labels.js';
import { MplsLwtunnelMetrics } from './metrics.js';
import { endpointPaths, type IngressPlan, NFT_TABLE, nodeState, planIngress, podState, type UnusedEndpoint } from './planner.js';
import { loadSaved, type Saved, savedText, writeSaved } from './saved.js';

export { LABELS_ANNOTATION, LINK_PREFIX, MplsLwtunnelConfig, POD_DEVICE, POD_LABEL, RULE_PRIORITY } from './config.js';
export { allocateLabels, labelsText, parseLabels, type LabelBook } from './labels.js';
export { endpointPaths, NFT_TABLE, nodeState, planIngress, podState, type EndpointPath, type IngressPlan, type UnusedEndpoint, type VipPlan } from './planner.js';

/** The route protocol of the plugin's routes and MPLS routes (docs/plugins.md: weft's range is 100-199, this plugin's 140). */
export const ROUTE_PROTOCOL = 140;
/** One endpoint pod on this node, as the last reconcile left it, with its label (published once the pod is ready). */
export interface PodStatus extends EndpointPod {
  readonly label?: number;
}

/** What `/api/mpls-lwtunnel/status` serves. */
export interface MplsLwtunnelStatus extends PluginStatusReport {
  readonly node: string;
  readonly ingress: boolean;
  readonly vips: readonly {
    readonly vip: string;
    readonly service: string;
    readonly affinity: string;
    readonly seed: string;
    readonly tableSize: number;
    readonly buildMs: number;
    readonly bucketsMovedLastChange: number;
    readonly endpoints: readonly { readonly address: string; readonly node: string; readonly label: number; readonly state: string; readonly slot: number; readonly buckets: number; readonly packets: number; readonly bytes: number }[];
  }[];
  /** Endpoints this ingress node does not use, and why (not on-link, no label yet). */
  readonly unused: readonly UnusedEndpoint[];
  readonly unslotted: readonly string[];
  readonly pods: readonly PodStatus[];
  /** Pods that got no label: the range is used up. */
  readonly exhausted: readonly string[];
  readonly labels: { readonly range: string; readonly used: number; readonly held: number };
  /** Nodes whose label annotation had entries left out, and why. */
  readonly badLabels: readonly { readonly node: string; readonly problems: readonly string[] }[];
  readonly refused: readonly RefusedService[];
  readonly ignoredEndpoints: readonly { readonly service: string; readonly problems: readonly string[] }[];
}

/** Where the plugin looks for pods' namespaces; a test points it at a directory of its own. */
export interface MplsLwtunnelOptions {
  readonly roots?: NetnsRoots;
}

/**
 * MPLS service tunnels: a Service annotated `weft.io/tunnel: <VIP>` and `weft.io/tunnel-encap: mpls` has its VIP
 * delivered, as plain IP with the client's address, into its endpoint pods. Each node gives its endpoint pods labels
 * and publishes them; ingress nodes pick an endpoint per flow from the shared Maglev table and route the packet with a
 * route that pushes the label toward the pod's node (`encap mpls`); the node swaps it for 100 toward the pod, which
 * pops it and takes the packet. See plugins/mpls-lwtunnel/README.md.
 */
export function mplsLwtunnelPlugin(options: MplsLwtunnelOptions = {}) {
  return definePlugin({
    name: 'mpls-lwtunnel',
    apiVersion: '2',
    description: "brings a Service's external IP into its pods with per-route MPLS encapsulation, Maglev-balanced alike on every ingress node",
    config: MplsLwtunnelConfig,
    watches: ['services', 'endpointslices'],
    reads: (config) => ({ annotations: [LABELS_ANNOTATION], labels: selectorLabels(config), fields: ['internalAddresses', 'externalAddresses', 'podCIDRs', 'location'] }),
    kernel: { linkPrefix: LINK_PREFIX, routeProtocol: ROUTE_PROTOCOL, rulePriorities: [RULE_PRIORITY, RULE_PRIORITY] },
    // This host kernel has no MPLS: the plugin runs in the VM's lab (test/mpls-lwtunnel.vm.test.ts), with a config.
    lab: { enabled: false },
    deps: {
      logger: coreServices.logger,
      metrics: coreServices.metrics,
      cluster: coreServices.cluster,
      kernel: coreServices.kernel,
      state: coreServices.state,
      clock: coreServices.clock,
      publish: coreServices.publish,
    },
    async setup({ config, dryRun, deps: { logger, metrics, cluster, kernel, state, clock, publish } }) {
      await kernel.require('mpls', 'nftables', 'dummy');
      const saved: Saved = await loadSaved(state, logger);
      let slots = saved.slots;
      let pods = new Map(saved.pods);
      let book: LabelBook = saved.book;
      let savedAs = savedText(saved);
      const tables = new TableMemory();
      const roots = options.roots ?? DEFAULT_ROOTS;
      /** Each pod namespace's interface that holds the pod's address, and its MTU (looked up once per namespace). */
      const podInterface = new Map<string, { name: string; mtu: number }>();
      const finder = new PodNetnsFinder(async (name) => {
        const found = await kernel.namespace(`${roots.runNetns}/${name}`).interfaces();
        return found.flatMap((i) => i.addresses.map((a) => a.slice(0, a.lastIndexOf('/'))));
      }, roots);
      const m = new MplsLwtunnelMetrics(metrics);
      type Last = {
        plan: IngressPlan | undefined;
        ingress: boolean;
        pods: PodStatus[];
        exhausted: string[];
        badLabels: MplsLwtunnelStatus['badLabels'];
        refused: RefusedService[];
        ignored: MplsLwtunnelStatus['ignoredEndpoints'];
        counters: ReadonlyMap<string, NftCounter>;
      };
      let last: Last | undefined;
      let loggedRefused = '';
      let loggedBad = '';
      let loggedExhausted = '';
      let published: string | undefined;
      /** Endpoint pods not found (or failing) are looked for again soon, then at resyncs. */
      const retry = new SoonRetry();
      const range = `${String(config.labels.first)}-${String(config.labels.last)}`;

      const save = async () => {
        const text = savedText({ slots, pods, book });
        if (text === savedAs || dryRun) return;
        await writeSaved(state, text);
        savedAs = text;
      };

      const status = (): MplsLwtunnelStatus => {
        const node = cluster.current().self.name;
        const labels = { range, used: book.labels.size, held: book.released.size };
        if (!last) return { converged: false, summary: 'not reconciled yet', node, ingress: false, vips: [], unused: [], unslotted: [], pods: [], exhausted: [], labels, badLabels: [], refused: [], ignoredEndpoints: [] };
        const counters = last.counters;
        const vips = (last.plan?.vips ?? []).map((v) => vipStatus(v, counters, tables.moved));
        const bad = last.pods.filter((p) => p.state !== 'ready').length;
        const unused = last.plan?.unused ?? [];
        const parts = [
          ...(last.ingress ? [`ingress: ${String(vips.length)} VIP(s), ${String(new Set(vips.flatMap((v) => v.endpoints.map((e) => e.address))).size)} endpoint(s)${unused.length > 0 ? `, ${String(unused.length)} not used` : ''}`] : []),
          `${String(last.pods.length - bad)}/${String(last.pods.length)} pod(s) ready`,
          ...(last.exhausted.length > 0 ? [`${String(last.exhausted.length)} without a label (range ${range} used up)`] : []),
          ...(last.refused.length > 0 ? [`${String(last.refused.length)} refused`] : []),
        ];
        return {
          converged: bad === 0 && last.exhausted.length === 0 && (last.plan?.unslotted.length ?? 0) === 0,
          summary: parts.join(', '),
          node,
          ingress: last.ingress,
          vips,
          unused,
          unslotted: last.plan?.unslotted ?? [],
          pods: last.pods,
          exhausted: last.exhausted,
          labels,
          badLabels: last.badLabels,
          refused: last.refused,
          ignoredEndpoints: last.ignored,
        };
      };

      /** The interface in a pod's namespace that holds its address. */
      const interfaceOf = async (path: string, address: string): Promise<{ name: string; mtu: number } | undefined> => {
        const known = podInterface.get(path);
        if (known !== undefined) return known;
        const found = (await kernel.namespace(path).interfaces()).find((i) => i.addresses.some((a) => canonicalIP(a.slice(0, a.lastIndexOf('/'))) === address));
        if (found) podInterface.set(path, { name: found.name, mtu: found.mtu });
        return found ? { name: found.name, mtu: found.mtu } : undefined;
      };

      return {
        status,
        async reconcile({ view }) {
          const { services, refused } = tunnelServices(view, { encap: 'mpls', unmarked: config.serveUnmarked });
          const refusedKey = JSON.stringify(refused);
          if (refusedKey !== loggedRefused) {
            for (const r of refused) logger.warn({ service: `${r.namespace}/${r.name}`, reason: r.reason }, 'tunnelled Service refused');
            loggedRefused = refusedKey;
          }
          const self = view.self;
          const ingress = selectsNode(config.ingress.nodeSelector, self.labels);

          // This node's endpoint pods, their VIPs, and their labels.
          const wanted = localEndpoints(services, self.name);
          const allocated = allocateLabels([...wanted.keys()], book, { first: config.labels.first, last: config.labels.last, now: clock.now(), holdMs: config.labels.hold });
          book = allocated.book;
          const exhaustedKey = allocated.exhausted.join(',');
          if (exhaustedKey !== loggedExhausted) {
            if (allocated.exhausted.length > 0) logger.error({ pods: allocated.exhausted.slice(0, 16), range }, `the label range is used up: ${String(allocated.exhausted.length)} endpoint pod(s) on this node get no label and no traffic; widen labels.first-last`);
            loggedExhausted = exhaustedKey;
          }
          // Labels are kept before anything uses them: after a crash, a label an ingress node pushes finds the same pod.
          await save();

          // The links this node's peers reach it by: MPLS input on them (an endpoint node), connected networks (ingress).
          const needLinks = ingress || book.labels.size > 0;
          const interfaces: readonly InterfaceInfo[] = needLinks ? await kernel.interfaces() : [];
          const ownAddresses = new Set(self.internalAddresses.map((a) => canonicalIP(a)));
          const underlay = interfaces.filter((i) => i.addresses.some((a) => ownAddresses.has(canonicalIP(a.slice(0, a.lastIndexOf('/')))))).map((i) => i.name);

          // The other nodes' labels, checked; this node's own, as it has them.
          const badLabels: { node: string; problems: string[] }[] = [];
          const peerLabels = new Map<string, ReadonlyMap<string, number>>();
          for (const n of view.nodes) {
            if (n.name === self.name) continue;
            const parsed = parseLabels(n.annotations[LABELS_ANNOTATION], n, config.labels);
            peerLabels.set(n.name, parsed.labels);
            if (parsed.problems.length > 0) badLabels.push({ node: n.name, problems: parsed.problems });
          }
          const badKey = JSON.stringify(badLabels);
          if (badKey !== loggedBad) {
            for (const b of badLabels) logger.warn({ node: b.node, annotation: LABELS_ANNOTATION, problems: b.problems }, "entries of a node's MPLS labels left out");
            loggedBad = badKey;
          }

          let plan: IngressPlan | undefined;
          let requeueAfter: number | undefined;
          if (ingress) {
            const { paths, unused } = endpointPaths(services, view.nodes, { name: self.name, location: self.location, interfaces }, (node) => peerLabels.get(node));
            plan = planIngress(services, paths, unused, config, { self: self.name, now: clock.now(), previousSlots: slots, previousTables: tables.tables });
            tables.update(plan.vips);
            slots = plan.slots;
            await save();
            requeueAfter = nextDrainEnd(plan.slots, config.drainTimeout, clock.now());
          } else {
            tables.clear();
          }

          // Pods first: a label is published only for a pod that takes label 100 — and the node's swap to it exists
          // before any ingress node learns the label.
          const labelled = new Map([...wanted].filter(([address]) => book.labels.has(address)));
          const set = await setUpPods(
            labelled,
            pods,
            finder,
            async (path, address, vips) => {
              try {
                const dev = await interfaceOf(path, address);
                if (dev === undefined) throw new Error(`no interface in ${path} holds ${address}`);
                await kernel.namespace(path).apply(podState(vips, dev.name, dev.mtu));
              } catch (err) {
                podInterface.delete(path); // looked up again next time: the namespace may have been made anew
                throw err;
              }
            },
            async (path) => {
              podInterface.delete(path);
              await kernel.namespace(path).apply({});
            },
          );
          pods = set.setUp;
          await save();
          const podStatus: PodStatus[] = [
            ...set.pods.map((p) => ({ ...p, label: book.labels.get(p.address) as number })),
            ...[...wanted].filter(([address]) => !book.labels.has(address)).map(([address, vips]) => ({ address, vips, state: 'failed' as const, problem: `no label: the range ${range} is used up` })),
          ];

          // This node's kernel: the ingress routes and classification, and the swaps toward its pods (all of them
          // that have a label: a pod not ready yet gets its swap too, and no traffic until its label is published).
          const node = nodeState(book.labels, underlay, config.labels.last);
          const desired = plan?.desired ?? {};
          await kernel.apply({
            ...desired,
            ...(node.sysctls ? { sysctls: [...(desired.sysctls ?? []), ...node.sysctls] } : {}),
            ...(node.mplsRoutes ? { mplsRoutes: node.mplsRoutes } : {}),
          });
          let counters: ReadonlyMap<string, NftCounter> = new Map();
          if (plan && plan.vips.length > 0) {
            counters = await kernel.nftCounters('inet', NFT_TABLE).catch((err: unknown) => {
              logger.debug({ err: describeError(err) }, 'cannot read the endpoint counters');
              return new Map<string, NftCounter>();
            });
          }

          // Published: the labels of the pods that are ready (swap and pop in place).
          const readyPods = new Set(podStatus.filter((p) => p.state === 'ready').map((p) => p.address));
          const ready = new Map([...book.labels].filter(([a]) => readyPods.has(a)));
          const text = labelsText(ready);
          if (!dryRun && text !== published) {
            await publish({ [LABELS_ANNOTATION]: text === '' ? null : text });
            published = text;
          }

          const ignored = services.filter((s) => s.ignored.length > 0).map((s) => ({ service: `${s.namespace}/${s.name}`, problems: s.ignored }));
          last = { plan, ingress, pods: podStatus, exhausted: allocated.exhausted, badLabels, refused, ignored, counters };
          const count = (st: PodStatus['state']) => podStatus.filter((p) => p.state === st).length;
          m.update({
            plan,
            refused: refused.length,
            pods: { ready: count('ready'), missing: count('missing'), failed: count('failed') },
            labels: { used: book.labels.size, held: book.released.size, free: config.labels.last - config.labels.first + 1 - book.labels.size - book.released.size },
            exhausted: allocated.exhausted.length,
            badPeers: badLabels.length,
            moved: tables.moved,
          });
          const soon = retry.next(podStatus.filter((p) => p.state !== 'ready').map((p) => p.address), clock.monotonic());
          if (soon !== undefined) requeueAfter = Math.min(requeueAfter ?? soon, soon);
          // A held label comes free when its hold ends: nothing to do then, the next allocation sees it.
          return requeueAfter === undefined ? undefined : { requeueAfter };
        },
        async stop({ cleanup }) {
          if (!cleanup) return;
          await publish({ [LABELS_ANNOTATION]: null }).catch((err: unknown) => logger.warn({ err: describeError(err) }, 'could not remove the MPLS labels annotation'));
          await kernel.apply({});
          for (const path of pods.keys()) await kernel.namespace(path).apply({}).catch(() => undefined);
          pods = new Map();
          slots = new Map();
          book = { labels: new Map(), released: new Map() };
          await save();
        },
      };
    },
  });
}

export default mplsLwtunnelPlugin();
