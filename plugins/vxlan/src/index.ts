import {
  canonicalIP,
  canonicalNetwork,
  coreServices,
  definePlugin,
  describeError,
  type DesiredState,
  type Family,
  type InterfaceInfo,
  type NodeInfo,
  optionalService,
  overlayServiceRef,
  TerminalError,
} from '@weft/core';
import { LINK_PREFIX, selectorLabels, VxlanConfig } from './config.js';
import { autoFamily, underlayAddress, VTEP_ANNOTATION, vtepMAC } from './facts.js';
import { VxlanMetrics } from './metrics.js';
import { desiredState, overhead, type OverlayPlan, planOverlay, planSegments, type SegmentPlan } from './planner.js';
import { vxlanStatus } from './status.js';

export { VxlanConfig, Segment, selectorLabels } from './config.js';
export { VTEP_ANNOTATION, vtepMAC, readVtep, isUnicastMAC } from './facts.js';
export { planOverlay, planSegments, desiredState, overhead, vtepInner, FLOOD_MAC, type OverlayPlan, type OverlayPeer, type SegmentPlan, type SelfVtep, type Excluded } from './planner.js';
export { allocate } from './pool.js';

/** The route protocol of the overlay's routes (docs/plugins.md: weft's range is 100-199, this plugin's 120). */
export const ROUTE_PROTOCOL = 120;

/** Reconciles that come round by themselves; anything else (start, a config change, a retry) reads the underlay afresh. */
const ROUTINE_REASONS = new Set(['cluster', 'resync', 'overlay']);
/** How long what was read of the underlay (MTU, subnets, bridges) is trusted on routine reconciles, in milliseconds. */
const UNDERLAY_REREAD_MS = 300_000;

/**
 * VXLAN: a pod overlay between the nodes (flannel's vxlan backend, without its outages: a VTEP MAC that never
 * changes, unicast FDB and neighbour entries written before the routes that use them, direct routing on a shared
 * subnet) and declared layer-2 segments between selected nodes, over the nodes' network or the WireGuard mesh.
 * See plugins/vxlan/README.md.
 */
export default definePlugin({
  name: 'vxlan',
  apiVersion: '2',
  description: 'VXLAN overlay between nodes with unicast FDB and neighbour entries, and declared L2 segments',
  config: VxlanConfig,
  watches: ['nodes'],
  // Its own annotation, and the labels its segments select by: another plugin's annotation runs nothing here.
  reads: (config) => ({ annotations: [VTEP_ANNOTATION], labels: selectorLabels(config), fields: ['internalAddresses', 'externalAddresses', 'podCIDRs', 'location', 'createdAt'] }),
  kernel: { linkPrefix: LINK_PREFIX, routeProtocol: ROUTE_PROTOCOL },
  // Not in the default lab: its pod overlay cannot run beside the WireGuard mesh there (both route the pod CIDRs).
  // `weft lab up --config` with a vxlan section runs it (plugins/vxlan/README.md, "In the lab").
  lab: { enabled: false },
  deps: {
    logger: coreServices.logger,
    metrics: coreServices.metrics,
    cluster: coreServices.cluster,
    publish: coreServices.publish,
    kernel: coreServices.kernel,
    trigger: coreServices.trigger,
    // The WireGuard mesh's addresses, for `underlay: wireguard` (and to refuse an overlay that would fight its routes).
    overlay: optionalService(overlayServiceRef),
  },
  async setup({ config, dryRun, deps: { logger, metrics, cluster, publish, kernel, trigger, overlay } }) {
    if (config.underlay === 'wireguard' && overlay === undefined) {
      throw new TerminalError('plugins.vxlan.underlay is wireguard, and no enabled plugin provides the mesh: enable the wireguard plugin, or set underlay: node');
    }
    if (config.mode === 'overlay' && overlay !== undefined) {
      throw new TerminalError(
        `plugins.vxlan.mode is overlay, and the ${overlay.interface} mesh routes the pod CIDRs already: the two would fight over the same routes. Use mode: segments with the mesh (underlay: wireguard carries them encrypted), or switch one off`,
      );
    }
    await kernel.require('vxlan');
    const unsubscribe = overlay?.onChange(() => trigger('overlay'));
    const vxMetrics = new VxlanMetrics(metrics);
    let underlayRead: { at: number; key: string; interfaces: readonly InterfaceInfo[] } | undefined;
    let last: { overlay: OverlayPlan | undefined; segments: readonly SegmentPlan[]; mtu: number | undefined; missingBridges: readonly string[]; at: number } | undefined;
    let excludedLogged = '';
    let noUnderlayLogged = false;

    /** This node's underlay address for the overlay: its internal address of the configured (or automatic) family. */
    const familyOf_ = (self: NodeInfo): Family => (config.family === 'ipv4' ? 4 : config.family === 'ipv6' ? 6 : autoFamily(self));
    /** Where a segment's VTEP of `node` sends from: its underlay address, or its address on the mesh. */
    const segmentUnderlayOf = (self: NodeInfo) => {
      const family = familyOf_(self);
      return (n: NodeInfo): string | undefined => {
        if (config.underlay === 'wireguard') {
          const a = n.name === self.name ? overlay?.self() : overlay?.node(n.name);
          return family === 6 ? a?.ip6 : a?.ip4;
        }
        return underlayAddress(n, family);
      };
    };

    const status = () => vxlanStatus(last, config, cluster.current().self.name);

    return {
      status,
      async reconcile({ view, reasons }) {
        const self = view.self;
        const family = familyOf_(self);
        const underlay = underlayAddress(self, family);
        const segmentLocal = segmentUnderlayOf(self)(self);
        // The underlay (MTU, this node's subnets, the operator's bridges): read at start, after a config change or a
        // failure, when this node's addresses change, and every 5 minutes on routine runs.
        const key = `${self.internalAddresses.join(',')} ${self.externalAddresses.join(',')} ${segmentLocal ?? ''}`;
        const routine = [...reasons].every((r) => ROUTINE_REASONS.has(r));
        // A missing operator bridge is looked for on every run until it is there.
        const waitingForBridge = (last?.missingBridges.length ?? 0) > 0;
        if (!(underlayRead && routine && !waitingForBridge && underlayRead.key === key && performance.now() - underlayRead.at < UNDERLAY_REREAD_MS)) {
          underlayRead = { at: performance.now(), key, interfaces: await kernel.interfaces() };
        }
        const interfaces = underlayRead.interfaces;
        const carrier = (ip: string | undefined) => (ip === undefined ? undefined : interfaces.find((i) => i.addresses.some((a) => canonicalIP(a.split('/')[0] as string) === ip)));

        let overlayPlan: OverlayPlan | undefined;
        let mtu: number | undefined;
        if (config.mode === 'overlay') {
          if (underlay === undefined) {
            if (!noUnderlayLogged) logger.error({ node: self.name, family }, `this node has no IPv${String(family)} address for the VXLAN underlay; the overlay waits for one`);
            noUnderlayLogged = true;
          } else {
            noUnderlayLogged = false;
            const link = carrier(underlay);
            const networks = (link?.addresses ?? []).map((a) => canonicalNetwork(a)).filter((n): n is string => n !== undefined);
            overlayPlan = planOverlay({
              nodes: view.nodes,
              self: { name: self.name, mac: vtepMAC(self.name, config.vni), underlay, location: self.location, podCIDRs: self.podCIDRs, networks },
              config,
              podNetworks: view.addressPlan.podNetworks,
            });
            mtu = config.mtu ?? Math.max(576, (link?.mtu ?? 1500) - overhead(underlay));
          }
        }
        const segments = planSegments({ nodes: view.nodes, self: self.name, segments: config.segments, underlayOf: segmentUnderlayOf(self) });
        const segmentCarrier = config.underlay === 'wireguard' ? interfaces.find((i) => i.name === overlay?.interface) : carrier(segmentLocal);
        const segmentMtu = Math.max(576, (segmentCarrier?.mtu ?? 1500) - (segmentLocal !== undefined ? overhead(segmentLocal) : 50));
        const bridges = new Set(interfaces.map((i) => i.name));
        const missingBridges = segments.filter((s) => s.member && s.bridge !== undefined && !s.bridge.startsWith(LINK_PREFIX) && !bridges.has(s.bridge)).map((s) => s.bridge as string);
        for (const b of missingBridges) if (!last?.missingBridges.includes(b)) logger.warn({ bridge: b }, "a segment's bridge does not exist on this node; its VTEP is not attached until it does");
        const state: DesiredState = desiredState(overlayPlan, segments, {
          interface: config.interface,
          vni: config.vni,
          port: config.port,
          mtu: mtu ?? 1450,
          segmentMtu,
          segmentLocal,
          bridges,
        });
        await kernel.apply(state);

        // Publish the VTEP (facts only, written when they change).
        if (!dryRun && overlayPlan) await publish({ [VTEP_ANNOTATION]: `${overlayPlan.self.mac},${overlayPlan.self.underlay}` });
        else if (!dryRun && config.mode === 'segments') await publish({ [VTEP_ANNOTATION]: null });

        const excluded = JSON.stringify([overlayPlan?.excluded ?? [], segments.map((s) => s.excluded)]);
        if (excluded !== excludedLogged) {
          for (const x of overlayPlan?.excluded ?? []) (x.kind === 'invalid' ? logger.warn.bind(logger) : logger.info.bind(logger))({ peer: x.node, reason: x.reason }, x.kind === 'invalid' ? 'peer left out of the overlay: invalid data' : 'peer not in the overlay yet');
          for (const s of segments) for (const x of s.excluded) logger.info({ segment: s.name, node: x.node, reason: x.reason }, 'member left out of the segment');
          excludedLogged = excluded;
        }
        last = { overlay: overlayPlan, segments, mtu, missingBridges, at: Date.now() };
        vxMetrics.update(overlayPlan, segments);
      },
      async stop({ cleanup }) {
        unsubscribe?.();
        if (cleanup && !dryRun) {
          // Switched off: the core removes the devices, entries and routes; the annotation goes too.
          await publish({ [VTEP_ANNOTATION]: null }).catch((err: unknown) => logger.warn({ err: describeError(err) }, 'could not remove the VXLAN annotation'));
        }
      },
    };
  },
});

