import { coreServices, definePlugin, type NodeInfo, optionalService, overlayServiceRef } from '@weft/core';
import { KeepaliveConfig, PLANES } from './config.js';
import { assembleMatrix, health, type NodeStatus, nodeStatus } from './matrix.js';
import { keepalivePage } from './page.js';
import { Prober, RESULTS } from './prober.js';
import { assignAll } from './select.js';
import { cached, fetchStatus, type PeerStatus, mapBounded } from './remote.js';
import { ProbeServer } from './server.js';
import { addressOn, clusterAddresses, probeTargets } from './targets.js';

export { KeepaliveConfig, PLANES, type Plane } from './config.js';
export { assembleMatrix, diagnose, health, nodeStatus, type Matrix, type MatrixCell, type NodeStatus } from './matrix.js';
export { assignAll, selectTargets, nextDelay, firstDelay, redundancy } from './select.js';
export { keepalivePage } from './page.js';
export { addressOn, clusterAddresses, firstHost, probeTargets } from './targets.js';

/** Histogram buckets of probe durations: 1 ms to 10 s. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Keepalive probing: every node answers probes on `port` and probes its peers every `interval` (jittered), by
 * default over a new TCP connection each time — traffic that keeps encapsulated paths warm — on each plane
 * configured (underlay, overlay, pod), and measures success, latency and optionally UDP loss. See
 * plugins/keepalive/README.md.
 */
export default definePlugin({
  name: 'keepalive',
  apiVersion: '2',
  description: 'probes every node on every plane: holds tunnels open, measures latency and loss',
  config: KeepaliveConfig,
  watches: ['nodes'],
  // Where to probe: addresses, pod CIDRs, readiness and location; nothing else in the view runs it.
  reads: { annotations: [], labels: [], fields: ['internalAddresses', 'externalAddresses', 'podCIDRs', 'ready', 'location'] },
  // Each node's overlay address, from the plugin that makes the overlay (the wireguard plugin); without one the
  // overlay plane says so for every peer.
  // No kernel and no annotations: it reads the view, serves its routes and probes.
  deps: {
    overlay: optionalService(overlayServiceRef),
    logger: coreServices.logger,
    metrics: coreServices.metrics,
    cluster: coreServices.cluster,
    http: coreServices.http,
    trigger: coreServices.trigger,
  },
  // The lab: short intervals on every plane, UDP too, so that a lab shows its matrix within seconds.
  lab: { config: { interval: '2s', timeout: '1s', planes: ['underlay', 'overlay', 'pod'], udp: { enabled: true } } },
  async setup({ config, dryRun, name, deps }) {
    const { overlay, logger, metrics, cluster, http, trigger } = deps;
    if (config.planes.includes('overlay') && overlay === undefined) logger.warn('the overlay plane is configured, and no enabled plugin provides an overlay (the wireguard plugin does): its probes report no address');
    // The overlay's addresses change with its provider's plans: probe where they are now.
    const unsubscribe = overlay?.onChange(() => trigger('overlay'));
    const self = cluster.current().self.name;
    const started = new Date().toISOString();
    const duration = metrics.histogram({ name: 'weft_probe_duration_seconds', help: 'Time to a probe answer, by target node and plane', labelNames: ['target', 'plane'], buckets: DURATION_BUCKETS });
    const total = metrics.counter({ name: 'weft_probe_total', help: 'Probes by target node, plane and result', labelNames: ['target', 'plane', 'result'] });
    const up = metrics.gauge({ name: 'weft_probe_up', help: '1 when the latest probe of the target on the plane answered', labelNames: ['target', 'plane'] });
    const udpSent = metrics.counter({ name: 'weft_probe_udp_packets_sent_total', help: 'UDP probe datagrams sent', labelNames: ['target', 'plane'] });
    const udpLost = metrics.counter({ name: 'weft_probe_udp_packets_lost_total', help: 'UDP probe datagrams without an echo within the timeout', labelNames: ['target', 'plane'] });
    const udpReordered = metrics.counter({ name: 'weft_probe_udp_packets_reordered_total', help: 'UDP probe echoes that came after a later one', labelNames: ['target', 'plane'] });
    const udpDuplicated = metrics.counter({ name: 'weft_probe_udp_packets_duplicated_total', help: 'UDP probe echoes that came twice', labelNames: ['target', 'plane'] });
    const echoRefused = metrics.counter({ name: 'weft_probe_udp_echo_refused_total', help: 'UDP probe datagrams not echoed: their source is no node of the cluster' });
    const peersGauge = metrics.gauge({ name: 'weft_probe_peers', help: 'Peers this node probes' });

    const prober = new Prober(config, {
      probed(target, plane, outcome, seconds) {
        total.inc({ target, plane, result: outcome });
        up.set({ target, plane }, outcome === 'ok' ? 1 : 0);
        if (seconds !== undefined && outcome === 'ok') duration.observe({ target, plane }, seconds);
      },
      udp(target, plane, round) {
        udpSent.inc({ target, plane }, round.sent);
        udpLost.inc({ target, plane }, round.sent - round.received);
        udpReordered.inc({ target, plane }, round.reordered);
        udpDuplicated.inc({ target, plane }, round.duplicates);
      },
    });
    /** Removes every series of a target that is no longer probed. */
    const prune = (target: string) => {
      for (const plane of PLANES) {
        duration.remove({ target, plane });
        up.remove({ target, plane });
        for (const result of RESULTS) total.remove({ target, plane, result });
        for (const c of [udpSent, udpLost, udpReordered, udpDuplicated]) c.remove({ target, plane });
      }
    };

    let probing: string[] = [];
    let membersKey = '';
    const status = (): NodeStatus => nodeStatus({ node: self, started, intervalMs: config.interval, planes: config.planes, probing }, prober.results());
    const server = new ProbeServer({ node: self, started }, status, () => echoRefused.inc());
    if (!dryRun) await server.start(config.listen, config.port, config.udp.enabled ? config.udp.port : undefined);

    /**
     * Every node's status: its own at once, the others' from their probe servers (partial when some fail), at most
     * `matrix.concurrency` asked at once, each answer checked. One gathering serves every request for
     * `matrix.cacheFor`, so an unauthenticated GET cannot make this node fan out to the cluster at will.
     */
    const matrix = cached(config.matrix.cacheFor, async () => {
      const view = cluster.current();
      const entries = await mapBounded(view.nodes, config.matrix.concurrency, async (n: NodeInfo): Promise<[string, PeerStatus | { error: string }]> => {
        if (n.name === self) return [n.name, status()];
        const a = addressOn(n, 'underlay');
        if ('missing' in a) return [n.name, { error: a.missing }];
        const s = await fetchStatus(a.address, config.port, config.timeout, config.matrix.maxStatusBytes);
        if (!('error' in s) && s.node !== n.name) return [n.name, { error: `its probe server answered as ${JSON.stringify(s.node)}` }];
        return [n.name, s];
      });
      return assembleMatrix(view.nodes.map((n) => n.name), config.planes, new Map(entries));
    });
    http.route('GET', '/matrix', async () => ({ json: await matrix() }));
    http.route('GET', '/health', async () => {
      const h = health(await matrix());
      return { status: h.healthy ? 200 : 503, json: h };
    });
    http.route('GET', '/', () => ({ body: keepalivePage(Math.max(2000, config.interval)), contentType: 'text/html; charset=utf-8' }));

    return {
      status,
      reconcile({ view }) {
        // Only Ready peers are probed; above maxPeers, this node's share (select.ts).
        const ready = view.nodes.filter((n) => n.ready || n.name === self).map((n) => n.name);
        const key = ready.join(',');
        if (key !== membersKey) {
          membersKey = key;
          probing = assignAll(ready, config).get(self) ?? [];
          logger.info({ peers: probing.length, of: ready.length - 1 }, 'probing');
        }
        server.setKnown(clusterAddresses(view.nodes, overlay));
        const targets = probeTargets(view, probing, config, overlay);
        if (!dryRun) for (const gone of prober.setPeers(targets)) prune(gone);
        peersGauge.set(targets.length);
        return Promise.resolve();
      },
      async stop() {
        unsubscribe?.();
        await prober.stop();
        await server.stop();
        logger.debug({ plugin: name }, 'keepalive stopped');
      },
    };
  },
});
