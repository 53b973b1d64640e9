import { canonicalIP, type ClusterView, coreServices, definePlugin, overlayServiceRef, type DesiredState, describeError, type WireGuardDeviceStatus } from '@weft/core';
import { LINK_PREFIX, WireGuardConfig } from './config.js';
import { IGNORED_LEADER_ANNOTATION, LEADER_LABEL, OPERATOR, PUBLISHED, ownEndpoint, readOverlay } from './facts.js';
import { meshDot } from './graph.js';
import { MeshMetrics } from './metrics.js';
import { loadKey, loadOverlay } from './saved.js';
import { type Claim, chooseOverlay, claimKey, noteClaims, parseLedger } from './overlay.js';
import { MeshOverlay } from './overlay-service.js';
import { peerConfig } from './peer-config.js';
import { MAX_RESETS, newPeers, poke, pokeAddresses, resetAfter, stuckPeers, withoutPeers } from './poke.js';
import { createPlanner, desiredState, type MeshPlan } from './planner.js';
import { handshakeAgesOf, meshStatus } from './status.js';

export { WireGuardConfig } from './config.js';
export { PUBLISHED, OPERATOR, LEADER_LABEL, IGNORED_LEADER_ANNOTATION, readNode } from './facts.js';
export { planMesh, createPlanner, desiredState, electLeader, leaderOrder, type LeaderRules, type MeshPlan, type PlannedPeer, type PlanInput, type SelfFacts } from './planner.js';
export { chooseOverlay, winners } from './overlay.js';
export { meshDot } from './graph.js';
export { peerConfig } from './peer-config.js';

/** The persistent keepalive of a lab node behind NAT, in seconds (its `weft.io/persistent-keepalive`). */
const LAB_NAT_KEEPALIVE_S = 5;

/** The route protocol of the mesh's routes (weft's range is 100-199). */
export const ROUTE_PROTOCOL = 110;

const now = () => Math.floor(Date.now() / 1000);

/** Reconciles that come round by themselves; anything else (start, a config change, a retry) reads afresh. */
const ROUTINE_REASONS = new Set(['cluster', 'resync', 'requeue']);
/** How long the underlay's MTU is trusted on routine reconciles, in seconds. */
const MTU_REREAD_S = 300;

/**
 * The WireGuard mesh: every node (granularity `full`) or one leader per location (`location`) carries pod traffic
 * to the others through an encrypted interface; routes for every peer's pod CIDRs and overlay addresses go through
 * it (or, inside a location, over the underlay). See plugins/wireguard/README.md.
 */
export default definePlugin({
  name: 'wireguard',
  apiVersion: '2',
  description: 'encrypted WireGuard mesh between nodes (full or by location), routes pod CIDRs through it',
  config: WireGuardConfig,
  watches: ['nodes'],
  // Its own annotations, the operator's, and the leader label: another plugin's annotation runs nothing here.
  reads: { annotations: ['weft.io/wireguard-*', OPERATOR.forceEndpoint, OPERATOR.persistentKeepalive, IGNORED_LEADER_ANNOTATION], labels: [LEADER_LABEL] },
  kernel: { linkPrefix: LINK_PREFIX, routeProtocol: ROUTE_PROTOCOL },
  // The mesh as an overlay for other plugins (keepalive's overlay plane): each node's overlay addresses as planned.
  provides: [overlayServiceRef],
  deps: {
    logger: coreServices.logger,
    metrics: coreServices.metrics,
    cluster: coreServices.cluster,
    publish: coreServices.publish,
    state: coreServices.state,
    http: coreServices.http,
    kernel: coreServices.kernel,
  },
  commands: [
    {
      name: 'graph',
      description: 'print the mesh as Graphviz DOT, as a running agent sees it (pipe into `dot -Tsvg`)',
      path: () => '/graph',
    },
    {
      name: 'peer-config',
      description: 'print a wg-quick config for an external peer of the config, with the cluster as its peers',
      arguments: [{ name: 'name', description: "the external peer's name (plugins.wireguard.peers[].name)" }],
      path: ([name]) => `/peer-config?name=${encodeURIComponent(name ?? '')}`,
    },
  ],
  // The lab: a full mesh with a 5 s heartbeat, and behind NAT the keepalive an operator would annotate.
  lab: {
    config: { granularity: 'full', heartbeat: '5s' },
    annotations: ({ nat }): Record<string, string> => (nat ? { [OPERATOR.persistentKeepalive]: String(LAB_NAT_KEEPALIVE_S) } : {}),
  },
  async setup({ config, dryRun, provide, deps: { logger, metrics, cluster, publish, state, http, kernel } }) {
    await kernel.require('wireguard');
    const key = await loadKey(state, dryRun);
    logger.info({ publicKey: key.publicKey, created: key.created }, key.created ? 'made a new WireGuard key pair' : 'WireGuard key loaded');
    let overlay = await loadOverlay(state, logger);
    // When this node first saw each other node's overlay claim: a claim's age is never a node's own word.
    const claimsSeen = parseLedger((await state.readFile('overlay-claims.json'))?.toString('utf8'));
    const ignoredLeaderAnnotation = new Set<string>();

    const meshMetrics = new MeshMetrics(metrics);

    let last: { plan: MeshPlan; observed: WireGuardDeviceStatus | undefined; desired: string; at: number } | undefined;
    let mtuCache: { mtu: number; at: number; addresses: string } | undefined;
    // Peers that joined (a key the last plan did not have) and were poked, waiting for their first handshake: checked
    // after resetAfter(), and reset when they have none (poke.ts, stuckPeers): public key -> when (performance.now()).
    const awaiting = new Map<string, number>();
    // A quiet mesh's heartbeat plans nothing: the last plan (the same object) while nothing it reads changed.
    const planner = createPlanner();
    // The desired state of a plan, made once per plan and MTU (with and without the private key, for the fingerprint).
    let desiredOf: { plan: MeshPlan; mtu: number; state: DesiredState; fingerprint: string } | undefined;
    const desiredFor = (plan: MeshPlan, mtu: number) => {
      if (desiredOf?.plan !== plan || desiredOf.mtu !== mtu) {
        desiredOf = { plan, mtu, state: desiredState(plan, config, key.privateKey, mtu), fingerprint: JSON.stringify(desiredState(plan, config, '', mtu)) };
      }
      return desiredOf;
    };
    let excludedLogged = '';
    const overlayRanges = [config.overlayCIDR, config.overlayCIDR6];
    const meshOverlay = new MeshOverlay(config.interface, overlayRanges);
    provide(overlayServiceRef, meshOverlay);
    // The overlay claims of the last view (the same view object: the same claims).
    let madeOf: { view: ClusterView; claimed: { node: string; ip4: string }[] } | undefined;

    const statusJson = () => meshStatus(last, { config, publicKey: key.publicKey, self: cluster.current().self, overlay, now: now() });
    const handshakeAges = () => (last ? handshakeAgesOf(last.plan, last.observed, now()) : {});
    http.route('GET', '/graph', () => (last ? { body: meshDot(last.plan, handshakeAges()), contentType: 'text/vnd.graphviz; charset=utf-8' } : { status: 503, json: { error: 'not reconciled yet' } }));
    http.route('GET', '/peer-config', ({ url }) => {
      const name = url.searchParams.get('name') ?? '';
      const peer = config.peers.find((p) => p.name === name);
      if (!peer) return { status: 404, json: { error: `no external peer ${JSON.stringify(name)}; configured: ${config.peers.map((p) => p.name).join(', ') || 'none'}` } };
      if (!last) return { status: 503, json: { error: 'not reconciled yet' } };
      return { body: peerConfig(last.plan, peer, new Date()), contentType: 'text/plain; charset=utf-8' };
    });

    /** The interface's MTU: configured, else the underlay's (the link holding this node's internal address) minus 80. */
    const mtuFor = async (internal: readonly string[]): Promise<number> => {
      if (config.mtu !== null) return config.mtu;
      const wanted = new Set(internal.map((a) => canonicalIP(a)));
      const underlay = (await kernel.interfaces()).find((i) => i.addresses.some((a) => wanted.has(canonicalIP(a.split('/')[0] as string))));
      return Math.max(1280, (underlay?.mtu ?? 1500) - 80);
    };

    return {
      status: statusJson,
      async reconcile({ view, reasons }) {
        const t = now();
        // Overlay address: kept unless another node's older claim wins it (overlay.ts).
        // Every other node's claim counts, even one the mesh leaves out for another bad value.
        if (madeOf?.view !== view) {
          const claimed = view.nodes.flatMap((n) => {
            if (n.name === view.self.name) return [];
            const o = readOverlay(n.annotations, config);
            return o.overlay4 !== undefined ? [{ node: n.name, ip4: o.overlay4 }] : [];
          });
          madeOf = { view, claimed };
        }
        const made = madeOf.claimed;
        if (noteClaims(claimsSeen, made, t) && !dryRun) await state.writeFile('overlay-claims.json', JSON.stringify(Object.fromEntries(claimsSeen)));
        const claims: Claim[] = made.map((c) => ({ ...c, since: claimsSeen.get(claimKey(c.node, c.ip4)) ?? t }));
        const choice = chooseOverlay({
          self: view.self.name,
          held: overlay,
          others: claims,
          overlayCIDR: config.overlayCIDR,
          overlayCIDR6: config.overlayCIDR6,
          now: t,
        });
        if (choice.reason !== undefined) {
          logger.info({ overlay: [choice.ip4, choice.ip6], reason: choice.reason }, 'overlay address chosen');
          overlay = { ip4: choice.ip4, since: choice.since };
          if (!dryRun) await state.writeFile('overlay.json', JSON.stringify(overlay));
        }
        const own = ownEndpoint(view.self, config.port);
        if (own.problem) logger.warn({ node: view.self.name }, own.problem);
        const self = { publicKey: key.publicKey, endpoint: own.endpoint, overlay4: choice.ip4, overlay6: choice.ip6, overlaySince: choice.since };
        const identity = {
          [PUBLISHED.publicKey]: key.publicKey,
          [PUBLISHED.endpoint]: own.endpoint ?? null,
          [PUBLISHED.overlay]: `${choice.ip4},${choice.ip6}`,
          [PUBLISHED.overlaySince]: String(choice.since),
        };
        // At start, who this node is goes out before the first apply (the slowest: it makes the device), so that
        // peers add it meanwhile; the poke after the apply then starts every handshake at once.
        const announced = last === undefined && !dryRun ? publish(identity) : undefined;

        // A reconcile for a cluster change alone plans from the device as last read, and touches the kernel only
        // when that plan differs; anything else (start, resync, heartbeat, retry) reads and applies.
        // Joined peers whose first handshake is due now: checked below against the device as read now.
        const due = new Set<string>();
        for (const [peer, at] of awaiting) if (at <= performance.now()) due.add(peer);
        for (const peer of due) awaiting.delete(peer);
        const onlyCluster = due.size === 0 && last !== undefined && [...reasons].every((r) => r === 'cluster');
        // The underlay's MTU (one `ip address show`): read at start, after a config change or a failure, when this
        // node's addresses change, and every MTU_REREAD_S on the routine runs (heartbeat, resync, cluster changes).
        const addresses = view.self.internalAddresses.join(',');
        const routine = [...reasons].every((r) => ROUTINE_REASONS.has(r));
        const fresh = mtuCache !== undefined && routine && mtuCache.addresses === addresses && performance.now() / 1000 - mtuCache.at < MTU_REREAD_S ? mtuCache : undefined;
        // The identity's patch, the device's status and the MTU's read are independent: they run at once.
        const [status, mtuRead] = await Promise.all([
          onlyCluster ? undefined : kernel.wireguardStatus(config.interface),
          fresh ?? mtuFor(view.self.internalAddresses).then((m) => ({ mtu: m, at: performance.now() / 1000, addresses })),
          announced,
        ]);
        mtuCache = mtuRead;
        const mtu = mtuRead.mtu;
        let observed = onlyCluster ? last?.observed : status;
        for (const n of view.nodes) {
          if (n.annotations[IGNORED_LEADER_ANNOTATION] !== undefined && !ignoredLeaderAnnotation.has(n.name)) {
            ignoredLeaderAnnotation.add(n.name);
            logger.warn({ node: n.name }, `${IGNORED_LEADER_ANNOTATION} is ignored: a node can set it on itself. Prefer leaders with the plugin's leaders list or the ${LEADER_LABEL} label`);
          }
        }
        const present = new Set(view.nodes.map((n) => n.name));
        for (const name of ignoredLeaderAnnotation) if (!present.has(name)) ignoredLeaderAnnotation.delete(name);
        let plan = planner({ view, config, self, observed, claimsSeen, now: t });
        if (onlyCluster && last && desiredFor(plan, mtu).fingerprint === last.desired) {
          last = { ...last, plan };
        } else {
          if (onlyCluster) {
            // Something changed: plan again from the device as it is now, so a roamed endpoint is kept.
            observed = await kernel.wireguardStatus(config.interface);
            plan = planner({ view, config, self, observed, claimsSeen, now: t });
          }
          if (plan.selfProblem) logger.error({ problem: plan.selfProblem }, "this node's own WireGuard data is invalid; it has no peers until that is fixed");
          const desired = desiredFor(plan, mtu);
          await kernel.apply(desired.state);
          // New peers get a datagram through the tunnel: the handshake starts now, not at WireGuard's 5 s retry.
          const fresh = newPeers(last?.plan, plan);
          if (!dryRun) await poke(pokeAddresses(fresh, overlayRanges));
          const known = new Set((last?.plan.peers ?? []).map((p) => p.publicKey));
          const joined = fresh.filter((p) => !known.has(p.publicKey));
          if (!dryRun && joined.length <= MAX_RESETS) {
            for (const p of joined) awaiting.set(p.publicKey, performance.now() + resetAfter(key.publicKey, p.publicKey));
          }
          last = { plan, observed, desired: desired.fingerprint, at: t };
        }
        if (due.size > 0) {
          // Candidates from the device as read at the start of this run; then read again right before the reset: a
          // handshake that completed meanwhile (a slow machine, a long round trip) is never torn down.
          const candidates = stuckPeers(due, plan, observed);
          const stuck = candidates.length === 0 ? [] : stuckPeers(new Set(candidates.map((p) => p.publicKey)), plan, await kernel.wireguardStatus(config.interface));
          if (stuck.length > 0) {
            const state = desiredFor(plan, mtu).state;
            await kernel.apply(withoutPeers(state, new Set(stuck.map((p) => p.publicKey))));
            await kernel.apply(state);
            await poke(pokeAddresses(stuck, overlayRanges));
            logger.info({ peers: stuck.map((p) => p.name) }, 'no handshake soon after the poke: peer reset so that WireGuard initiates now, not after its 5 s retry');
          }
        }

        const excluded = JSON.stringify(plan.excluded);
        if (excluded !== excludedLogged) {
          for (const x of plan.excluded) (x.kind === 'invalid' ? logger.warn.bind(logger) : logger.info.bind(logger))({ peer: x.node, reason: x.reason }, x.kind === 'invalid' ? 'peer left out of the mesh: invalid data' : 'peer not in the mesh yet');
          excludedLogged = excluded;
        }
        meshMetrics.update(plan, observed);
        meshOverlay.update(plan);

        // Publish: identity and what this node saw of its peers — facts, written only when they change. Nothing
        // periodic: a location's leader is chosen by Ready (planner.ts), so a quiet mesh makes no Node patch at all.
        // A heartbeat an older version published is removed.
        if (!dryRun) {
          await publish({
            ...identity,
            [PUBLISHED.discovered]: Object.keys(plan.discovered).length > 0 ? JSON.stringify(plan.discovered) : null,
            [PUBLISHED.lastSeen]: null,
          });
        }
        // A joined peer's handshake is checked when its reset falls due, not at the next heartbeat.
        const next = Math.min(...awaiting.values());
        return { requeueAfter: awaiting.size === 0 ? config.heartbeat : Math.min(config.heartbeat, Math.max(0, next - performance.now()) + 10) };
      },
      async stop({ cleanup }) {
        if (cleanup && !dryRun) {
          // Switched off: the core removes the interface and routes; the annotations go too. The key stays.
          await publish(Object.fromEntries(Object.values(PUBLISHED).map((k) => [k, null]))).catch((err: unknown) => logger.warn({ err: describeError(err) }, 'could not remove the WireGuard annotations'));
        }
      },
    };
  },
});
