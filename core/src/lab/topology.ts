/**
 * The lab's topology as data: which namespaces, links, addresses and routes a lab of N nodes in L locations has,
 * and the `ip -batch` lines that build it. Pure, so it is tested with tables and `weft lab up` only executes it.
 *
 * Addresses (docs/design.md, "Addresses in the lab and the tests"):
 * - location k's underlay: 198.18.k.0/24, its gateway (router or NAT router) 198.18.k.1;
 * - node i: 198.18.k.(10+i) on its underlay; pod CIDR 198.19.i.0/24, gateway 198.19.i.1, pod 198.19.i.10;
 * - a NAT router's public side: 203.0.113.(4k+2)/30, the backbone router 203.0.113.(4k+1);
 * - with `discovery: kubernetes`, the lab's API server: 198.18.1.2, on the first location's switch.
 */

/** Where labs keep their files: `<root>/<name>/`. A tmpfs, like the namespaces: a reboot clears both. */
export const DEFAULT_LAB_ROOT = '/run/weft-lab';

/** Where the lab's nodes come from: a folder of node documents, or an API server (the project's fake one). */
export type LabDiscovery = 'directory' | 'kubernetes';

/** The lab's API server (`discovery: kubernetes`): an address on the first location's switch, and its port. */
export const LAB_API = { address: '198.18.1.2', port: 6443 } as const;

/** What `weft lab up` was asked for. */
export interface LabOptions {
  /** The lab's name: namespaces are `wlab-<name>-…`, files under `<root>/<name>/`. */
  readonly name: string;
  readonly nodes: number;
  readonly locations: number;
  /** Every location but the first behind a NAT router. */
  readonly nat: boolean;
  /** Where the agents learn of the nodes (default `directory`). */
  readonly discovery?: LabDiscovery;
  /** Pods per node (default 1): pod j of node i is 198.19.i.(9+j), `weft lab exec ni:podj`. */
  readonly pods?: number;
  /**
   * An outside client behind the lab's router (192.0.2.2, `weft lab exec client`), as a data centre's client would
   * be: the router routes VIPs to ingress nodes by ECMP ({@link LAB_CLIENT}); the lab then has a router, and every
   * node a default route to it, also with one location.
   */
  readonly client?: boolean;
}

/** The outside client and its leg on the router (`client: true`). */
export const LAB_CLIENT = { address: '192.0.2.2', gateway: '192.0.2.1', prefix: 24 } as const;

export const LAB_LIMITS = { nodes: 60, locations: 8, pods: 8 } as const;

/** One simulated node. */
export interface LabNode {
  readonly name: string;
  /** 1-based. */
  readonly index: number;
  readonly location: string;
  readonly locationIndex: number;
  readonly netns: string;
  readonly podNetns: string;
  readonly underlay: string;
  /** The underlay's gateway, when the lab has more than one location. */
  readonly gateway: string | undefined;
  readonly podCIDR: string;
  readonly podGateway: string;
  /** The first pod's address (`NODE:pod`). */
  readonly pod: string;
  /** Every pod of the node, the first (`pod`, `podNetns`) included. */
  readonly pods: readonly LabPod[];
  /** The address the node's traffic leaves its location with, when it sits behind a NAT router. */
  readonly natAddress: string | undefined;
}

/** One pod of a node: its namespace, its address, and its veth on the node (`pod0`, `pod1`, …). */
export interface LabPod {
  /** `pod` for the first, `pod2`, `pod3`, … for the others (`weft lab exec n1:pod2`). */
  readonly name: string;
  readonly netns: string;
  readonly address: string;
  readonly veth: string;
}

/** One location: a switch (a bridge in its own namespace), maybe behind a NAT router. */
export interface LabLocation {
  readonly name: string;
  readonly index: number;
  readonly subnet: string;
  readonly switchNetns: string;
  readonly natNetns: string | undefined;
  readonly natAddress: string | undefined;
}

/** A step that builds the lab: a batch of `ip` commands in one namespace, sysctls, or an nftables ruleset. */
export type LabStep =
  | { readonly kind: 'ip'; readonly netns: string; readonly lines: readonly string[] }
  | { readonly kind: 'sysctl'; readonly netns: string; readonly settings: Readonly<Record<string, string>> }
  | { readonly kind: 'nft'; readonly netns: string; readonly ruleset: string };

export interface LabTopology {
  readonly options: LabOptions;
  readonly prefix: string;
  readonly nodes: readonly LabNode[];
  readonly locations: readonly LabLocation[];
  /** Every namespace of the lab, in the order they are created. */
  readonly namespaces: readonly string[];
  readonly routerNetns: string | undefined;
  /** The outside client's namespace (`client: true`). */
  readonly clientNetns: string | undefined;
  /** The namespace the lab's API server runs in (`discovery: kubernetes`). */
  readonly apiNetns: string | undefined;
  readonly steps: readonly LabStep[];
}

const NAME = /^[a-z][a-z0-9]{0,9}$/;

/** Checks options; returns the problems (empty when valid). */
export function checkLabOptions(o: LabOptions): string[] {
  const problems: string[] = [];
  if (!NAME.test(o.name)) problems.push(`lab name: expected 1-10 lowercase letters and digits starting with a letter, got ${JSON.stringify(o.name)}`);
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > LAB_LIMITS.nodes) problems.push(`--nodes: expected an integer 1-${String(LAB_LIMITS.nodes)}, got ${String(o.nodes)}`);
  if (!Number.isInteger(o.locations) || o.locations < 1 || o.locations > LAB_LIMITS.locations) {
    problems.push(`--locations: expected an integer 1-${String(LAB_LIMITS.locations)}, got ${String(o.locations)}`);
  } else if (Number.isInteger(o.nodes) && o.locations > o.nodes) problems.push(`--locations: ${String(o.locations)} locations need at least as many nodes, got ${String(o.nodes)}`);
  if (o.nat && o.locations < 2) problems.push('--nat: needs at least 2 locations (the first is never behind NAT)');
  if (o.pods !== undefined && (!Number.isInteger(o.pods) || o.pods < 1 || o.pods > LAB_LIMITS.pods)) problems.push(`--pods: expected an integer 1-${String(LAB_LIMITS.pods)}, got ${String(o.pods)}`);
  if (o.discovery !== undefined && o.discovery !== 'directory' && o.discovery !== 'kubernetes') {
    problems.push(`--discovery: expected directory or kubernetes, got ${JSON.stringify(o.discovery)}`);
  }
  return problems;
}

/** Node i's location (1-based): nodes fill locations in contiguous blocks, n1 in the first. */
export function locationOfNode(i: number, nodes: number, locations: number): number {
  return Math.floor(((i - 1) * locations) / nodes) + 1;
}

/** The lab's topology; throws with every problem when the options are invalid. */
export function labTopology(options: LabOptions): LabTopology {
  const problems = checkLabOptions(options);
  if (problems.length > 0) throw new Error(problems.join('\n'));
  const prefix = `wlab-${options.name}-`;
  const multi = options.locations > 1;
  const client = options.client === true;
  // A router when there is more than one location, or an outside client to route.
  const routerNetns = multi || client ? `${prefix}rt` : undefined;
  const clientNetns = client ? `${prefix}client` : undefined;
  const podCount = options.pods ?? 1;

  const locations: LabLocation[] = [];
  for (let k = 1; k <= options.locations; k++) {
    const natted = options.nat && k > 1;
    locations.push({
      name: `loc${String(k)}`,
      index: k,
      subnet: `198.18.${String(k)}.0/24`,
      switchNetns: `${prefix}sw${String(k)}`,
      natNetns: natted ? `${prefix}nat${String(k)}` : undefined,
      natAddress: natted ? `203.0.113.${String(4 * k + 2)}` : undefined,
    });
  }
  const nodes: LabNode[] = [];
  for (let i = 1; i <= options.nodes; i++) {
    const k = locationOfNode(i, options.nodes, options.locations);
    const loc = locations[k - 1] as LabLocation;
    nodes.push({
      name: `n${String(i)}`,
      index: i,
      location: loc.name,
      locationIndex: k,
      netns: `${prefix}n${String(i)}`,
      podNetns: `${prefix}n${String(i)}-pod`,
      underlay: `198.18.${String(k)}.${String(10 + i)}`,
      gateway: routerNetns ? `198.18.${String(k)}.1` : undefined,
      podCIDR: `198.19.${String(i)}.0/24`,
      podGateway: `198.19.${String(i)}.1`,
      pod: `198.19.${String(i)}.10`,
      pods: Array.from({ length: podCount }, (_, j) => ({
        name: j === 0 ? 'pod' : `pod${String(j + 1)}`,
        netns: j === 0 ? `${prefix}n${String(i)}-pod` : `${prefix}n${String(i)}-pod${String(j + 1)}`,
        address: `198.19.${String(i)}.${String(10 + j)}`,
        veth: `pod${String(j)}`,
      })),
      natAddress: loc.natAddress,
    });
  }

  const steps: LabStep[] = [];
  const forward = { 'net.ipv4.ip_forward': '1' };
  for (const loc of locations) {
    steps.push({ kind: 'ip', netns: loc.switchNetns, lines: ['link set lo up', 'link add br0 type bridge', 'link set br0 up'] });
  }
  for (const n of nodes) {
    const sw = (locations[n.locationIndex - 1] as LabLocation).switchNetns;
    steps.push({
      kind: 'ip',
      netns: n.netns,
      lines: [
        'link set lo up',
        `link add eth0 type veth peer name ${n.name} netns ${sw}`,
        `addr add ${n.underlay}/24 dev eth0`,
        'link set eth0 up',
        'link add pods type bridge',
        `addr add ${n.podGateway}/24 dev pods`,
        'link set pods up',
        ...n.pods.flatMap((p) => [`link add ${p.veth} type veth peer name eth0 netns ${p.netns}`, `link set ${p.veth} master pods`, `link set ${p.veth} up`]),
        ...(n.gateway ? [`route add default via ${n.gateway}`] : []),
      ],
    });
    for (const p of n.pods) steps.push({ kind: 'ip', netns: p.netns, lines: ['link set lo up', `addr add ${p.address}/24 dev eth0`, 'link set eth0 up', `route add default via ${n.podGateway}`] });
    steps.push({ kind: 'ip', netns: sw, lines: [`link set ${n.name} master br0`, `link set ${n.name} up`] });
    steps.push({ kind: 'sysctl', netns: n.netns, settings: forward });
  }
  if (routerNetns) {
    // The router creates its legs to plain locations; a NAT router creates its own `wan` leg into the router,
    // which the router then addresses.
    const direct: string[] = ['link set lo up'];
    const natLegs: string[] = [];
    const natSteps: LabStep[] = [];
    for (const loc of locations) {
      const gw = `198.18.${String(loc.index)}.1/24`;
      const leg = `loc${String(loc.index)}`;
      if (loc.natNetns && loc.natAddress) {
        const up = `203.0.113.${String(4 * loc.index + 1)}`;
        natSteps.push({
          kind: 'ip',
          netns: loc.natNetns,
          lines: [
            'link set lo up',
            `link add lan type veth peer name gw netns ${loc.switchNetns}`,
            `addr add ${gw} dev lan`,
            'link set lan up',
            `link add wan type veth peer name ${leg} netns ${routerNetns}`,
            `addr add ${loc.natAddress}/30 dev wan`,
            'link set wan up',
            `route add default via ${up}`,
          ],
        });
        natSteps.push({ kind: 'sysctl', netns: loc.natNetns, settings: forward });
        natSteps.push({ kind: 'nft', netns: loc.natNetns, ruleset: natRuleset() });
        natLegs.push(`addr add ${up}/30 dev ${leg}`, `link set ${leg} up`);
      } else {
        direct.push(`link add ${leg} type veth peer name gw netns ${loc.switchNetns}`, `addr add ${gw} dev ${leg}`, `link set ${leg} up`);
      }
    }
    if (clientNetns) {
      direct.push(`link add client type veth peer name eth0 netns ${clientNetns}`, `addr add ${LAB_CLIENT.gateway}/${String(LAB_CLIENT.prefix)} dev client`, 'link set client up');
    }
    steps.push({ kind: 'ip', netns: routerNetns, lines: direct }, ...natSteps);
    if (clientNetns) {
      steps.push({ kind: 'ip', netns: clientNetns, lines: ['link set lo up', `addr add ${LAB_CLIENT.address}/${String(LAB_CLIENT.prefix)} dev eth0`, 'link set eth0 up', `route add default via ${LAB_CLIENT.gateway}`] });
    }
    if (natLegs.length > 0) steps.push({ kind: 'ip', netns: routerNetns, lines: natLegs });
    for (const loc of locations) steps.push({ kind: 'ip', netns: loc.switchNetns, lines: ['link set gw master br0', 'link set gw up'] });
    // ECMP by the flow's addresses and ports (L4), as a data centre's router spreads VIP traffic over ingress nodes.
    steps.push({ kind: 'sysctl', netns: routerNetns, settings: { ...forward, ...(client ? { 'net.ipv4.fib_multipath_hash_policy': '1', 'net.ipv6.fib_multipath_hash_policy': '1' } : {}) } });
  }
  // The API server sits on the first location's switch (never behind NAT): nodes there reach it on-link, the others
  // through the router (and their NAT router).
  const apiNetns = options.discovery === 'kubernetes' ? `${prefix}api` : undefined;
  if (apiNetns) {
    const sw = (locations[0] as LabLocation).switchNetns;
    steps.push({
      kind: 'ip',
      netns: apiNetns,
      lines: [
        'link set lo up',
        `link add eth0 type veth peer name api netns ${sw}`,
        `addr add ${LAB_API.address}/24 dev eth0`,
        'link set eth0 up',
        ...(multi ? ['route add default via 198.18.1.1'] : []),
      ],
    });
    steps.push({ kind: 'ip', netns: sw, lines: ['link set api master br0', 'link set api up'] });
  }
  const namespaces = [
    ...locations.map((l) => l.switchNetns),
    ...(routerNetns ? [routerNetns] : []),
    ...(clientNetns ? [clientNetns] : []),
    ...(apiNetns ? [apiNetns] : []),
    ...locations.flatMap((l) => (l.natNetns ? [l.natNetns] : [])),
    ...nodes.flatMap((n) => [n.netns, ...n.pods.map((p) => p.netns)]),
  ];
  return { options, prefix, nodes, locations, namespaces, routerNetns, clientNetns, apiNetns, steps };
}

/**
 * A NAT router: masquerade what leaves its public side, and (as any home router's firewall) drop what arrives there
 * unsolicited, other than ICMP. Dropped before conntrack confirms it, an unsolicited packet leaves no state behind —
 * state that would otherwise make the router pick another port when a node behind it answers (breaking NAT
 * traversal, which real cone NATs allow).
 */
export function natRuleset(): string {
  return [
    'table ip wlab-nat {',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat;',
    '    oifname "wan" masquerade',
    '  }',
    '  chain input {',
    '    type filter hook input priority filter;',
    '    iifname "wan" ct state new meta l4proto != icmp drop',
    '  }',
    '}',
    '',
  ].join('\n');
}

/**
 * The ruleset that cuts a node off from some peers: every packet to or from their addresses is dropped (in, out
 * and forwarded). An empty list removes the table.
 */
export function cutRuleset(addresses: readonly string[]): string {
  const lines = ['table inet wlab-cut', 'delete table inet wlab-cut'];
  if (addresses.length > 0) {
    const set = `{ ${[...new Set(addresses)].sort().join(', ')} }`;
    lines.push('table inet wlab-cut {');
    for (const [chain, hook] of [['cut_in', 'input'], ['cut_out', 'output'], ['cut_forward', 'forward']] as const) {
      lines.push(`  chain ${chain} {`, `    type filter hook ${hook} priority -10;`, `    ip saddr ${set} drop`, `    ip daddr ${set} drop`, '  }');
    }
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}
