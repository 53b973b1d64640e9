/**
 * `weft`: the distribution. The core knows no plugin by name; this package is where weft's own plugins are listed,
 * each an ordinary package loaded through the same path as a third party's. Its bin (`weft`) and the bundle
 * (tools/bundle-entry.mjs) name this catalog before they run the core's CLI.
 */
import type { CatalogEntry } from '@weft/core/cli';

/** weft's own plugins: loaded by their config key alone, listed by `weft plugins`, enabled by `weft lab up`. */
export const BUILTIN_PLUGINS: readonly CatalogEntry[] = [
  {
    name: 'wireguard',
    module: '@weft/plugin-wireguard',
    description: 'encrypted WireGuard mesh between nodes (full or by location), routes pod CIDRs through it',
    status: 'available',
    load: () => import('@weft/plugin-wireguard'),
  },
  {
    name: 'vxlan',
    module: '@weft/plugin-vxlan',
    description: 'VXLAN overlay between nodes with unicast FDB and neighbour entries, and declared L2 segments',
    status: 'available',
    load: () => import('@weft/plugin-vxlan'),
  },
  {
    name: 'gre-tunnel',
    module: '@weft/plugin-gre-tunnel',
    description: "brings a Service's external IP into its pods through GRE, Maglev-balanced alike on every ingress node",
    status: 'available',
    load: () => import('@weft/plugin-gre-tunnel'),
  },
  {
    name: 'mpls-lwtunnel',
    module: '@weft/plugin-mpls-lwtunnel',
    description: "brings a Service's external IP into its pods with per-route MPLS encapsulation, Maglev-balanced alike on every ingress node",
    status: 'available',
    load: () => import('@weft/plugin-mpls-lwtunnel'),
  },
  {
    name: 'keepalive',
    module: '@weft/plugin-keepalive',
    description: 'probes every node on every plane: holds tunnels open, measures latency and loss',
    status: 'available',
    load: () => import('@weft/plugin-keepalive'),
  },
];
