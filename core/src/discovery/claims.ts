import type { AddressPlan, ClaimProblem, ClusterView, NodeInfo } from '../api/cluster.js';
import { canonicalIP, type Family, formatNetwork, ipToBigInt, type Network, networkSize, networksOverlap, parseNetwork } from '../kernel/ip.js';

/**
 * What every node's claims are checked against before a plugin sees them: the declared address plan and the limits.
 * A node's pod CIDRs and addresses are its own word (its kubelet, its directory document); the plan is the
 * operator's, and the age of a node is the API server's.
 */
export interface ClaimRules {
  readonly plan: AddressPlan;
  /** The shortest prefix a node may claim as a pod CIDR, per family. */
  readonly largestPodCIDR: { readonly ipv4: number; readonly ipv6: number };
  readonly maxPodCIDRsPerNode: number;
  readonly maxAddressesPerNode: number;
  readonly maxNodes: number;
}

const cut = (text: string) => (text.length > 100 ? `${text.slice(0, 97)}...` : text);

/**
 * Parsed addresses and networks by their text. Nodes keep their addresses and pod CIDRs across view changes, so
 * each is parsed once, not once per change (parsing is most of the cost). Cleared when it grows past its cap.
 */
const CACHE_CAP = 50_000;
const ipCache = new Map<string, { ip: string; family: Family; value: bigint } | null>();
/** A network with its canonical text and the first address after it. */
interface Parsed {
  readonly net: Network;
  readonly text: string;
  readonly end: bigint;
}
const netCache = new Map<string, Parsed | null>();

function parsedIP(text: string): { ip: string; family: Family; value: bigint } | null {
  let hit = ipCache.get(text);
  if (hit === undefined) {
    const ip = canonicalIP(text);
    const b = ip === undefined ? undefined : ipToBigInt(ip);
    hit = ip === undefined || b === undefined ? null : { ip, family: b.family, value: b.value };
    if (ipCache.size >= CACHE_CAP) ipCache.clear();
    ipCache.set(text, hit);
  }
  return hit;
}

function parsedNet(text: string): Parsed | null {
  let hit = netCache.get(text);
  if (hit === undefined) {
    const net = parseNetwork(text);
    hit = net === undefined ? null : { net, text: formatNetwork(net), end: net.base + networkSize(net) };
    if (netCache.size >= CACHE_CAP) netCache.clear();
    netCache.set(text, hit);
  }
  return hit;
}
const compareBig = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);

/** One pod CIDR claim on its way through the checks. */
interface PodClaim {
  readonly node: NodeInfo;
  readonly text: string;
  readonly net: Network;
  /** The first address after the network. */
  readonly end: bigint;
}

/** Sorted addresses of one family, for "does this network hold any node's address" by binary search. */
function containsAny(sorted: readonly bigint[], net: Network, end: bigint): boolean {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as bigint) < net.base) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length && (sorted[lo] as bigint) < end;
}

/**
 * The claims that overlap some other claim, found by one sweep over the claims sorted by start: every group whose
 * union is one connected range and that holds two claims or more. Usually empty; the pairwise rules run on these only.
 */
function overlapGroups(claims: readonly PodClaim[]): PodClaim[][] {
  const sorted = [...claims].sort((a, b) => a.net.family - b.net.family || compareBig(a.net.base, b.net.base));
  const groups: PodClaim[][] = [];
  let group: PodClaim[] = [];
  let reach = 0n;
  let family: Family | undefined;
  for (const c of sorted) {
    if (group.length > 0 && c.net.family === family && c.net.base < reach) {
      group.push(c);
      if (c.end > reach) reach = c.end;
      continue;
    }
    if (group.length > 1) groups.push(group);
    group = [c];
    reach = c.end;
    family = c.net.family;
  }
  if (group.length > 1) groups.push(group);
  return groups;
}

/**
 * Decides overlapping pod CIDR claims by age: oldest first, a claim stands when it overlaps no claim that already
 * stands; claims of equally old nodes that overlap each other all fall. Never by name.
 */
function decideOverlaps(group: readonly PodClaim[], refuse: (c: PodClaim, reason: string, keeper?: PodClaim) => void): void {
  const byAge = [...group].sort((a, b) => a.node.createdAt - b.node.createdAt);
  const standing: PodClaim[] = [];
  for (let i = 0; i < byAge.length; ) {
    let j = i;
    while (j < byAge.length && (byAge[j] as PodClaim).node.createdAt === (byAge[i] as PodClaim).node.createdAt) j += 1;
    const peers = byAge.slice(i, j);
    const accepted: PodClaim[] = [];
    for (const c of peers) {
      const older = standing.find((s) => s.node.name !== c.node.name && networksOverlap(s.net, c.net));
      const twin = peers.find((p) => p.node.name !== c.node.name && networksOverlap(p.net, c.net));
      if (older) refuse(c, `overlaps ${older.node.name}'s ${older.text}, which the cluster knew first`, older);
      else if (twin) refuse(c, `overlaps ${twin.node.name}'s ${twin.text}, and the cluster knew both nodes at the same time: neither keeps it`);
      else accepted.push(c);
    }
    standing.push(...accepted);
    i = j;
  }
}

/**
 * Checks every node's claims and returns the view plugins see: each node keeps the pod CIDRs and addresses that
 * pass, and `claimProblems` says what was refused, or kept against a rival, and why. Pure and deterministic.
 *
 * - Over `maxNodes`, the newest nodes are left out (this node never is).
 * - An address that is not one is refused, and all of a node's when it claims more than `maxAddressesPerNode`.
 *   An address two nodes claim is reported on both and kept on both: an
 *   address is where weft sends the claimant's own traffic, so a false claim reaches only the true owner.
 * - A pod CIDR is refused when it is not a network, is bigger than `largestPodCIDR`, lies outside the declared pod
 *   networks, overlaps a service or underlay network, or holds any node's address; all of a node's pod CIDRs are
 *   refused when it claims more than `maxPodCIDRsPerNode`. Between nodes whose pod CIDRs overlap, the older keeps
 *   it (equally old: neither does).
 */
export function vetClaims(view: ClusterView, rules: ClaimRules, previous?: { readonly source: ClusterView; readonly vetted: ClusterView }): ClusterView {
  if (previous && sameClaimsEverywhere(previous.source, view)) return carryOver(view, rules, previous);
  const problems: ClaimProblem[] = [];
  const problem = (node: string, field: ClaimProblem['field'], value: string, outcome: ClaimProblem['outcome'], reason: string) =>
    problems.push({ node, field, value: cut(value), outcome, reason });

  // The view's size: the oldest nodes (and this one) are kept.
  let nodes = view.nodes;
  if (nodes.length > rules.maxNodes) {
    const others = nodes.filter((n) => n.name !== view.self.name).sort((a, b) => a.createdAt - b.createdAt);
    const room = rules.maxNodes - 1;
    const boundary = others[room - 1]?.createdAt ?? -Infinity;
    // Nodes as old as the last that fits are all left out when not all of them fit: no order among them is fair.
    const fits = others.filter((n) => n.createdAt <= boundary).length <= room;
    const kept = new Set(others.filter((n) => n.createdAt < boundary || (fits && n.createdAt === boundary)).map((n) => n.name));
    kept.add(view.self.name);
    for (const n of others) {
      if (!kept.has(n.name)) problem(n.name, 'node', n.name, 'refused', `the view holds at most ${String(rules.maxNodes)} nodes (cluster.maxNodes); the newest are left out`);
    }
    nodes = nodes.filter((n) => kept.has(n.name));
  }

  // Addresses: canonical, and where two nodes claim one, said on both.
  const addresses = new Map<string, { internal: string[]; external: string[] }>();
  const owners = new Map<string, { value: bigint; family: Family; names: string[] }>();
  for (const n of nodes) {
    if (n.internalAddresses.length + n.externalAddresses.length > rules.maxAddressesPerNode) {
      const all = [...n.internalAddresses, ...n.externalAddresses];
      problem(n.name, 'address', all.join(','), 'refused', `${String(all.length)} addresses, more than cluster.maxAddressesPerNode (${String(rules.maxAddressesPerNode)}): none accepted`);
      addresses.set(n.name, { internal: [], external: [] });
      continue;
    }
    const clean = (list: readonly string[]) =>
      list.flatMap((a) => {
        const parsed = parsedIP(a);
        if (parsed === null) {
          problem(n.name, 'address', a, 'refused', 'not an IP address');
          return [];
        }
        const held = owners.get(parsed.ip);
        if (held === undefined) owners.set(parsed.ip, { value: parsed.value, family: parsed.family, names: [n.name] });
        else if (!held.names.includes(n.name)) held.names.push(n.name);
        return [parsed.ip];
      });
    addresses.set(n.name, { internal: [...new Set(clean(n.internalAddresses))], external: [...new Set(clean(n.externalAddresses))] });
  }
  const nodeAddresses: Record<Family, bigint[]> = { 4: [], 6: [] };
  for (const [ip, { value, family, names }] of owners) {
    nodeAddresses[family].push(value);
    if (names.length < 2) continue;
    for (const name of names) problem(name, 'address', ip, 'contested', `also claimed by ${names.filter((x) => x !== name).join(', ')}`);
  }
  nodeAddresses[4].sort(compareBig);
  nodeAddresses[6].sort(compareBig);

  // Pod CIDRs: each against the plan and the nodes' addresses, then against each other by age.
  const plan = {
    pod: rules.plan.podNetworks.map((c) => parsedNet(c) as Parsed),
    service: rules.plan.serviceNetworks.map((c) => parsedNet(c) as Parsed),
    underlay: rules.plan.underlayNetworks.map((c) => parsedNet(c) as Parsed),
  };
  const overlaps = (a: Parsed, net: Network, end: bigint) => a.net.family === net.family && a.net.base < end && net.base < a.end;
  const claims: PodClaim[] = [];
  for (const n of nodes) {
    if (n.podCIDRs.length > rules.maxPodCIDRsPerNode) {
      problem(n.name, 'podCIDR', n.podCIDRs.join(','), 'refused', `${String(n.podCIDRs.length)} pod CIDRs, more than cluster.maxPodCIDRsPerNode (${String(rules.maxPodCIDRsPerNode)}): none accepted`);
      continue;
    }
    const seen = new Set<string>();
    for (const text of n.podCIDRs) {
      const parsed = parsedNet(text);
      if (parsed === null) {
        problem(n.name, 'podCIDR', text, 'refused', 'not a CIDR');
        continue;
      }
      const { net, end } = parsed;
      const canonical = parsed.text;
      if (seen.has(canonical)) continue;
      seen.add(canonical);
      const largest = net.family === 4 ? rules.largestPodCIDR.ipv4 : rules.largestPodCIDR.ipv6;
      const service = plan.service.find((x) => overlaps(x, net, end));
      const underlay = plan.underlay.find((x) => overlaps(x, net, end));
      let reason: string | undefined;
      if (net.prefix < largest) reason = `bigger than a node may claim (cluster.largestPodCIDR: /${String(largest)})`;
      else if (plan.pod.length > 0 && !plan.pod.some((x) => x.net.prefix <= net.prefix && overlaps(x, net, end)))
        reason = `outside the cluster's pod networks (${rules.plan.podNetworks.join(', ')})`;
      else if (service) reason = `overlaps the service network ${service.text}`;
      else if (underlay) reason = `overlaps the underlay network ${underlay.text}`;
      else if (containsAny(nodeAddresses[net.family], net, end)) reason = "holds a node's own address";
      if (reason) problem(n.name, 'podCIDR', text, 'refused', reason);
      else claims.push({ node: n, text: canonical, net, end });
    }
  }
  const refused = new Set<PodClaim>();
  for (const group of overlapGroups(claims)) {
    decideOverlaps(group, (c, reason, keeper) => {
      refused.add(c);
      problem(c.node.name, 'podCIDR', c.text, 'refused', reason);
      if (keeper) problem(keeper.node.name, 'podCIDR', keeper.text, 'contested', `also claimed by ${c.node.name} (refused there: the cluster knew ${keeper.node.name} first)`);
    });
  }
  const podCIDRs = new Map<string, string[]>();
  for (const c of claims) if (!refused.has(c)) podCIDRs.set(c.node.name, [...(podCIDRs.get(c.node.name) ?? []), c.text]);

  if (problems.length === 0 && nodes === view.nodes && nodes.every((n) => sameClaims(n, podCIDRs.get(n.name) ?? [], addresses.get(n.name)))) {
    return view.addressPlan === rules.plan ? view : Object.freeze({ ...view, addressPlan: rules.plan });
  }
  const vetted = nodes.map((n) => {
    const a = addresses.get(n.name) as { internal: string[]; external: string[] };
    return sameClaims(n, podCIDRs.get(n.name) ?? [], a) ? n : Object.freeze({ ...n, podCIDRs: podCIDRs.get(n.name) ?? [], internalAddresses: a.internal, externalAddresses: a.external });
  });
  problems.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : a.field < b.field ? -1 : a.field > b.field ? 1 : a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  return Object.freeze({
    ...view,
    self: vetted.find((n) => n.name === view.self.name) ?? view.self,
    nodes: Object.freeze(vetted),
    addressPlan: rules.plan,
    claimProblems: Object.freeze(problems.map((p) => Object.freeze(p))),
  });
}

const sameList = (x: readonly string[], y: readonly string[]) => x === y || (x.length === y.length && x.every((v, i) => v === y[i]));

/**
 * Whether two source views make the same claims: the same nodes, equally old, with the same pod CIDRs and addresses.
 * Most view changes are not claims (an annotation published, a node's readiness): then the checks need not run again.
 */
function sameClaimsEverywhere(a: ClusterView, b: ClusterView): boolean {
  if (a.nodes.length !== b.nodes.length || a.self.name !== b.self.name) return false;
  return a.nodes.every((x, i) => {
    const y = b.nodes[i] as NodeInfo;
    return x === y || (x.name === y.name && x.createdAt === y.createdAt && sameList(x.podCIDRs, y.podCIDRs) && sameList(x.internalAddresses, y.internalAddresses) && sameList(x.externalAddresses, y.externalAddresses));
  });
}

/** The vetted view of a source view whose claims are those of `previous.source`: the same outcome, on the new nodes. */
function carryOver(view: ClusterView, rules: ClaimRules, previous: { readonly source: ClusterView; readonly vetted: ClusterView }): ClusterView {
  const before = new Map(previous.source.nodes.map((n) => [n.name, n]));
  const after = new Map(previous.vetted.nodes.map((n) => [n.name, n]));
  const nodes = view.nodes.flatMap((n) => {
    const vetted = after.get(n.name);
    if (vetted === undefined) return []; // left out (cluster.maxNodes)
    if (vetted === before.get(n.name)) return [n];
    return [Object.freeze({ ...n, podCIDRs: vetted.podCIDRs, internalAddresses: vetted.internalAddresses, externalAddresses: vetted.externalAddresses })];
  });
  if (nodes.length === view.nodes.length && nodes.every((n, i) => n === view.nodes[i]) && previous.vetted.claimProblems.length === 0) {
    return view.addressPlan === rules.plan ? view : Object.freeze({ ...view, addressPlan: rules.plan });
  }
  return Object.freeze({
    ...view,
    self: nodes.find((n) => n.name === view.self.name) ?? view.self,
    nodes: Object.freeze(nodes),
    addressPlan: rules.plan,
    claimProblems: previous.vetted.claimProblems,
  });
}

/** Whether a node's claims came through unchanged (so that the same object can stand in the vetted view). */
function sameClaims(n: NodeInfo, podCIDRs: readonly string[], a: { internal: string[]; external: string[] } | undefined): boolean {
  return a !== undefined && sameList(n.podCIDRs, podCIDRs) && sameList(n.internalAddresses, a.internal) && sameList(n.externalAddresses, a.external);
}

/** The rules a core config declares (canonical CIDRs), made once per config so that vetting can be cached by identity. */
export function claimRules(cluster: {
  readonly podNetworks: readonly string[];
  readonly serviceNetworks: readonly string[];
  readonly underlayNetworks: readonly string[];
  readonly largestPodCIDR: { readonly ipv4: number; readonly ipv6: number };
  readonly maxPodCIDRsPerNode: number;
  readonly maxAddressesPerNode: number;
  readonly maxNodes: number;
}): ClaimRules {
  const canonical = (list: readonly string[]) => Object.freeze(list.map((c) => formatNetwork(parseNetwork(c) as Network)));
  return Object.freeze({
    plan: Object.freeze({ podNetworks: canonical(cluster.podNetworks), serviceNetworks: canonical(cluster.serviceNetworks), underlayNetworks: canonical(cluster.underlayNetworks) }),
    largestPodCIDR: Object.freeze({ ...cluster.largestPodCIDR }),
    maxPodCIDRsPerNode: cluster.maxPodCIDRsPerNode,
    maxAddressesPerNode: cluster.maxAddressesPerNode,
    maxNodes: cluster.maxNodes,
  });
}

/** Keeps the vetted view of the latest source view, and says when what is refused changes (log and metric). */
export class ClaimChecker {
  private last: { source: ClusterView; rules: ClaimRules; vetted: ClusterView } | undefined;
  private reported = new Map<string, ClaimProblem>();

  constructor(
    private readonly report: {
      readonly added: (p: ClaimProblem) => void;
      readonly cleared: (p: ClaimProblem) => void;
      readonly counts: (refused: ReadonlyMap<string, number>) => void;
    },
  ) {}

  /** The view plugins see for this source view under these rules (the same object while neither changes). */
  view(source: ClusterView, rules: ClaimRules): ClusterView {
    if (this.last?.source === source && this.last.rules === rules) return this.last.vetted;
    const vetted = vetClaims(source, rules, this.last?.rules === rules ? this.last : undefined);
    this.last = { source, rules, vetted };
    const now = new Map(vetted.claimProblems.map((p) => [`${p.node}\0${p.field}\0${p.value}\0${p.outcome}\0${p.reason}`, p]));
    for (const [key, p] of now) if (!this.reported.has(key)) this.report.added(p);
    for (const [key, p] of this.reported) if (!now.has(key)) this.report.cleared(p);
    if (now.size !== this.reported.size || [...now.keys()].some((k) => !this.reported.has(k))) {
      const refused = new Map<string, number>();
      for (const p of vetted.claimProblems) if (p.outcome === 'refused') refused.set(`${p.node}\0${p.field}`, (refused.get(`${p.node}\0${p.field}`) ?? 0) + 1);
      this.report.counts(refused);
    }
    this.reported = now;
    return vetted;
  }

  /** The problems of the latest vetted view. */
  problems(): readonly ClaimProblem[] {
    return this.last?.vetted.claimProblems ?? [];
  }
}
