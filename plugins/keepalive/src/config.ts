import { isIP } from 'node:net';
import { describeValue, duration, intInRange, port, z } from '@weft/core';

/** The planes a peer can be probed on. */
export const PLANES = ['underlay', 'overlay', 'pod'] as const;
export type Plane = (typeof PLANES)[number];

/** The `plugins.keepalive` section. */
export const KeepaliveConfig = z
  .strictObject({
    port: port().default(9472).meta({ description: 'TCP port of the probe server (HTTP)' }),
    listen: z
      .string()
      .refine((s) => isIP(s) !== 0, { error: (iss) => `expected an IP address to listen on, got ${describeValue(iss.input)}` })
      .default('::')
      .meta({ description: 'address of the probe server; "::" is every address of the node (IPv4 too)' }),
    interval: duration({ min: 200 }).prefault('10s').meta({ description: 'how often each peer is probed on each plane' }),
    jitter: z.number().min(0).max(0.5).default(0.1).meta({ description: 'each probe is moved by up to ± this fraction of the interval, so nodes never probe in lockstep' }),
    timeout: duration({ min: 50 }).prefault('2s').meta({ description: 'a probe without an answer by then fails' }),
    newConnection: z.boolean().default(true).meta({ description: 'open a new TCP connection for every probe (holds the door: the tunnel never goes cold); false reuses connections' }),
    planes: z
      .array(z.enum(PLANES, { error: (iss) => `expected one of ${PLANES.join(', ')}, got ${describeValue(iss.input)}` }))
      .min(1)
      .default(['underlay', 'overlay'])
      .meta({ description: "underlay: the peer's internal address; overlay: its address on the overlay another plugin provides (the wireguard plugin's mesh); pod: the first address of its pod CIDR" }),
    underlayAcrossLocations: z
      .boolean()
      .default(false)
      .meta({ description: 'probe the underlay of peers in other locations too (by default only within a location: across locations the underlay need not route, the overlay is the path)' }),
    maxPeers: intInRange(1, 100_000).default(100).meta({ description: 'up to this many peers every node probes every other; above it, a subset picked by rendezvous hashing' }),
    minProbers: intInRange(1, 1000).default(3).meta({ description: 'above maxPeers, every node is still probed by at least this many others' }),
    udp: z
      .strictObject({
        enabled: z.boolean().default(false),
        port: port().default(9473),
        packets: intInRange(1, 1000).default(10).meta({ description: 'sequence-numbered datagrams per peer, plane and interval' }),
      })
      .prefault({})
      .meta({ description: 'a UDP probe for loss, reordering and duplicates' }),
    matrix: z
      .strictObject({
        concurrency: intInRange(1, 1000).default(16).meta({ description: 'peers asked at once when the matrix is gathered' }),
        maxStatusBytes: intInRange(4096, 64 * 1024 * 1024).default(1024 * 1024).meta({ description: "a peer's status bigger than this is not read (the node is listed as missing)" }),
        cacheFor: duration({ max: 60_000 }).prefault('1s').meta({ description: 'one gathering answers every request for this long' }),
      })
      .prefault({})
      .meta({ description: 'what one GET of /api/keepalive/matrix (or /health) may make this node do' }),
  })
  .refine((c) => c.timeout < c.interval, { error: 'timeout must be shorter than interval', path: ['timeout'] })
  .refine((c) => c.maxPeers >= 2 * c.minProbers, { error: 'maxPeers must be at least twice minProbers (the coverage guarantee needs the room)', path: ['maxPeers'] });
export type KeepaliveConfig = z.output<typeof KeepaliveConfig>;
