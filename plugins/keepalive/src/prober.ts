import { createSocket, type Socket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { KeepaliveConfig, Plane } from './config.js';
import type { Agent } from 'node:http';
import { nodeHttp } from './node-http.js';
import { firstDelay, nextDelay } from './select.js';
import { UDP_MAGIC } from './server.js';
import type { PlaneAddress } from './targets.js';

/**
 * Probes start on a grid of this many milliseconds. The probes due in one slot share the event loop's wake-ups (their
 * timers fire together, their connections complete together): 1,000 peers at a 10 s interval cost about a third of
 * the CPU they cost spread one by one. The jitter stays; only its resolution is this.
 */
export const PROBE_SLOT_MS = 250;

/** `delay` moved later to the next slot boundary of the grid. */
export function onGrid(delay: number, now = performance.now()): number {
  return Math.ceil((now + delay) / PROBE_SLOT_MS) * PROBE_SLOT_MS - now;
}

/** How a probe ended. */
export const RESULTS = ['ok', 'timeout', 'refused', 'unreachable', 'wrong-node', 'error'] as const;
export type ProbeOutcome = (typeof RESULTS)[number];

/** The latest probe of one target on one plane, with counts since this agent started probing it. */
export interface ProbeResult {
  readonly target: string;
  readonly plane: Plane;
  /** Where it was probed; absent when the plane has no address for it (then `missing` says why). */
  readonly address?: string;
  readonly missing?: string;
  readonly up: boolean;
  readonly result?: ProbeOutcome;
  readonly rttMs?: number;
  readonly error?: string;
  /** Unix ms of the latest probe. */
  readonly at?: number;
  readonly ok: number;
  readonly failed: number;
  /** The UDP probe's figures (when enabled): totals since start, and the loss of the latest round. */
  readonly udp?: { readonly sent: number; readonly received: number; readonly lost: number; readonly reordered: number; readonly duplicates: number; readonly lastLoss: number };
}

/** What the prober reports after each probe (the plugin turns it into metrics). */
export interface ProbeEvents {
  probed(target: string, plane: Plane, outcome: ProbeOutcome, seconds: number | undefined): void;
  udp(target: string, plane: Plane, round: { sent: number; received: number; reordered: number; duplicates: number }): void;
}

interface Peer {
  name: string;
  addresses: Partial<Record<Plane, PlaneAddress>>;
  timer: NodeJS.Timeout | undefined;
  results: Map<Plane, ProbeResult>;
}

interface UdpRound {
  readonly key: string;
  readonly target: string;
  readonly plane: Plane;
  readonly seqs: Set<number>;
  received: Set<number>;
  highest: number;
  reordered: number;
  duplicates: number;
}

/**
 * Probes a set of peers on their planes, each on its own jittered timer: an HTTP GET (by default over a new TCP
 * connection, which is what keeps an idle tunnel warm), checked to come from the expected node, and optionally a
 * burst of sequence-numbered UDP datagrams echoed back (loss, reordering, duplicates).
 */
export class Prober {
  private readonly peers = new Map<string, Peer>();
  private readonly agent: Agent | undefined;
  private stopped = false;
  private udp4: Socket | undefined;
  private udp6: Socket | undefined;
  private readonly rounds = new Map<number, UdpRound>();
  private nextRound = 1;
  private nextSeq = 1;
  private readonly proberId = Math.floor(Math.random() * 0xffffffff);

  constructor(
    private readonly config: KeepaliveConfig,
    private readonly events: ProbeEvents,
    private readonly random: () => number = Math.random,
  ) {
    this.agent = config.newConnection ? undefined : new (nodeHttp().Agent)({ keepAlive: true, maxSockets: 1, keepAliveMsecs: 1000 });
  }

  /** Probes exactly these peers from now on; peers that are gone stop being probed (their results go too). */
  setPeers(peers: readonly { name: string; addresses: Partial<Record<Plane, PlaneAddress>> }[]): string[] {
    const wanted = new Map(peers.map((p) => [p.name, p]));
    const removed: string[] = [];
    for (const [name, peer] of this.peers) {
      if (wanted.has(name)) continue;
      clearTimeout(peer.timer);
      this.peers.delete(name);
      removed.push(name);
    }
    for (const p of peers) {
      const existing = this.peers.get(p.name);
      if (existing) {
        existing.addresses = p.addresses;
        continue;
      }
      const peer: Peer = { name: p.name, addresses: p.addresses, timer: undefined, results: new Map() };
      this.peers.set(p.name, peer);
      this.schedule(peer, firstDelay(this.config.interval, this.random));
    }
    return removed;
  }

  /** Every latest result, sorted by target and plane. */
  results(): ProbeResult[] {
    const out: ProbeResult[] = [];
    for (const p of [...this.peers.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      for (const plane of this.config.planes) {
        const r = p.results.get(plane);
        const a = p.addresses[plane];
        out.push(r ?? { target: p.name, plane, ...(a && 'address' in a ? { address: a.address } : a ? { missing: a.missing } : {}), up: false, ok: 0, failed: 0 });
      }
    }
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const p of this.peers.values()) clearTimeout(p.timer);
    this.peers.clear();
    this.agent?.destroy();
    for (const s of [this.udp4, this.udp6]) if (s) await new Promise<void>((r) => s.close(() => r()));
    this.udp4 = this.udp6 = undefined;
  }

  private schedule(peer: Peer, delay: number): void {
    if (this.stopped) return;
    peer.timer = setTimeout(() => {
      void this.tick(peer).finally(() => {
        if (this.peers.get(peer.name) === peer) this.schedule(peer, nextDelay(this.config.interval, this.config.jitter, this.random));
      });
    }, onGrid(delay));
    peer.timer.unref();
  }

  /** One round for a peer: every plane at once. */
  private async tick(peer: Peer): Promise<void> {
    await Promise.all(
      this.config.planes.map(async (plane) => {
        const a = peer.addresses[plane];
        const prev = peer.results.get(plane) ?? { target: peer.name, plane, up: false, ok: 0, failed: 0 };
        if (!a || 'missing' in a) {
          peer.results.set(plane, { target: peer.name, plane, missing: a ? a.missing : 'no address', up: false, ok: prev.ok, failed: prev.failed, ...(prev.udp ? { udp: prev.udp } : {}) });
          return;
        }
        const [http, udp] = await Promise.all([this.agent ? this.probeHttp(peer.name, a.address) : this.probeFresh(peer.name, a.address), this.config.udp.enabled ? this.probeUdp(peer.name, plane, a.address) : undefined]);
        if (this.peers.get(peer.name) !== peer) return;
        const ok = http.outcome === 'ok';
        const udpTotals = udp
          ? {
              sent: (prev.udp?.sent ?? 0) + udp.sent,
              received: (prev.udp?.received ?? 0) + udp.received,
              lost: (prev.udp?.lost ?? 0) + (udp.sent - udp.received),
              reordered: (prev.udp?.reordered ?? 0) + udp.reordered,
              duplicates: (prev.udp?.duplicates ?? 0) + udp.duplicates,
              lastLoss: udp.sent === 0 ? 0 : (udp.sent - udp.received) / udp.sent,
            }
          : undefined;
        peer.results.set(plane, {
          target: peer.name,
          plane,
          address: a.address,
          up: ok,
          result: http.outcome,
          ...(http.seconds !== undefined ? { rttMs: Math.round(http.seconds * 100_000) / 100 } : {}),
          ...(http.error ? { error: http.error } : {}),
          at: Date.now(),
          ok: prev.ok + (ok ? 1 : 0),
          failed: prev.failed + (ok ? 0 : 1),
          ...(udpTotals ? { udp: udpTotals } : {}),
        });
        this.events.probed(peer.name, plane, http.outcome, http.seconds);
        if (udp) this.events.udp(peer.name, plane, udp);
      }),
    );
  }

  /**
   * A new TCP connection and one HTTP GET of the peer's probe server, written and read by hand: for a probe a second
   * per peer and plane, node:http's client (agent, parser, streams) cost about half the probe's CPU. `ok` only when
   * the expected node answers with 200.
   */
  private probeFresh(target: string, address: string): Promise<HttpProbe> {
    return new Promise((resolve) => {
      const started = performance.now();
      let done = false;
      const chunks: Buffer[] = [];
      let size = 0;
      const socket = connect({ host: address, port: this.config.port, family: isIP(address) });
      const finish = (r: HttpProbe) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(r);
      };
      const timer = setTimeout(() => finish({ outcome: 'timeout', error: `no answer within ${String(this.config.timeout)} ms` }), this.config.timeout);
      socket.setNoDelay(true);
      socket.on('connect', () => socket.write(`GET / HTTP/1.1\r\nHost: ${isIP(address) === 6 ? `[${address}]` : address}\r\nConnection: close\r\n\r\n`));
      socket.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 8192) finish({ outcome: 'wrong-node', error: 'answered with more than 8 KiB' });
        else chunks.push(c);
      });
      socket.on('end', () => {
        const seconds = (performance.now() - started) / 1000;
        const text = Buffer.concat(chunks).toString('utf8');
        const split = text.indexOf('\r\n\r\n');
        finish(judgeAnswer(target, /^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1], split < 0 ? '' : text.slice(split + 4), seconds));
      });
      socket.on('error', (err: NodeJS.ErrnoException) => finish(connectFailure(err)));
    });
  }

  /** An HTTP GET of the peer's probe server over a kept connection (newConnection: false); `ok` only when the expected node answers. */
  private probeHttp(target: string, address: string): Promise<HttpProbe> {
    return new Promise((resolve) => {
      const started = performance.now();
      let done = false;
      const finish = (r: HttpProbe) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(r);
      };
      const req = nodeHttp().request({
        host: address,
        family: isIP(address),
        port: this.config.port,
        path: '/',
        agent: this.agent ?? false,
        headers: this.agent ? {} : { Connection: 'close' },
      });
      const timer = setTimeout(() => {
        req.destroy();
        finish({ outcome: 'timeout', error: `no answer within ${String(this.config.timeout)} ms` });
      }, this.config.timeout);
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (body.length < 4096) body += c;
        });
        res.on('end', () => finish(judgeAnswer(target, String(res.statusCode), body, (performance.now() - started) / 1000)));
        res.on('error', (err) => finish({ outcome: 'error', error: err.message }));
      });
      req.on('error', (err: NodeJS.ErrnoException) => finish(connectFailure(err)));
      req.end();
    });
  }

  /** A burst of datagrams to the peer's UDP echo; counts what came back (loss), out of order, and twice. */
  private async probeUdp(target: string, plane: Plane, address: string): Promise<{ sent: number; received: number; reordered: number; duplicates: number }> {
    const family = isIP(address) === 6 ? 6 : 4;
    const socket = await this.udpSocket(family);
    const id = this.nextRound++ >>> 0;
    const round: UdpRound = { key: `${target}/${plane}`, target, plane, seqs: new Set(), received: new Set(), highest: -1, reordered: 0, duplicates: 0 };
    this.rounds.set(id, round);
    for (let i = 0; i < this.config.udp.packets; i++) {
      const seq = this.nextSeq++ >>> 0;
      round.seqs.add(seq);
      const msg = Buffer.alloc(24);
      msg.writeUInt32BE(UDP_MAGIC, 0);
      msg.writeUInt32BE(this.proberId, 4);
      msg.writeUInt32BE(id, 8);
      msg.writeUInt32BE(seq, 12);
      msg.writeDoubleBE(performance.now(), 16);
      socket.send(msg, this.config.udp.port, address);
    }
    await new Promise((r) => setTimeout(r, this.config.timeout));
    this.rounds.delete(id);
    return { sent: round.seqs.size, received: round.received.size, reordered: round.reordered, duplicates: round.duplicates };
  }

  private async udpSocket(family: 4 | 6): Promise<Socket> {
    const existing = family === 4 ? this.udp4 : this.udp6;
    if (existing) return existing;
    const s = createSocket(family === 4 ? 'udp4' : 'udp6');
    s.on('message', (msg) => {
      if (msg.length !== 24 || msg.readUInt32BE(0) !== UDP_MAGIC || msg.readUInt32BE(4) !== this.proberId) return;
      const round = this.rounds.get(msg.readUInt32BE(8));
      const seq = msg.readUInt32BE(12);
      if (!round || !round.seqs.has(seq)) return;
      if (round.received.has(seq)) round.duplicates++;
      else {
        if (seq < round.highest) round.reordered++;
        round.received.add(seq);
        round.highest = Math.max(round.highest, seq);
      }
    });
    s.on('error', () => undefined);
    await new Promise<void>((r) => s.bind(0, () => r()));
    s.unref();
    if (family === 4) this.udp4 = s;
    else this.udp6 = s;
    return s;
  }
}

type HttpProbe = { outcome: ProbeOutcome; seconds?: number; error?: string };

/** A probe server's answer: `ok` only for HTTP 200 from the expected node (its name in the JSON body). */
function judgeAnswer(target: string, status: string | undefined, body: string, seconds: number): HttpProbe {
  let node: unknown;
  try {
    node = (JSON.parse(body) as { node?: unknown }).node;
  } catch {
    node = undefined;
  }
  if (status === '200' && node === target) return { outcome: 'ok', seconds };
  return { outcome: 'wrong-node', seconds, error: `answered by ${typeof node === 'string' ? JSON.stringify(node) : 'something else'} (HTTP ${status ?? '?'})` };
}

/** A connection that failed, by its error code. */
function connectFailure(err: NodeJS.ErrnoException): HttpProbe {
  const code = err.code ?? '';
  const outcome: ProbeOutcome = code === 'ECONNREFUSED' ? 'refused' : ['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN'].includes(code) ? 'unreachable' : 'error';
  return { outcome, error: `${code || 'error'}: ${err.message}` };
}
