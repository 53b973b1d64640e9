import { createSocket, type Socket } from 'node:dgram';
import type { Server } from 'node:http';
import { nodeHttp } from './node-http.js';

/** What a probe gets back: who answered, and since when its agent runs. */
export interface ProbeAnswer {
  readonly node: string;
  readonly started: string;
}

/** Connections the probe server holds at once; more are closed as they arrive. */
export const MAX_PROBE_CONNECTIONS = 1024;

/** `::ffff:192.0.2.1` (an IPv4 peer on a dual-stack socket) as `192.0.2.1`. */
export function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** The UDP probe's datagram: magic, a prober id, a sequence number, the send time. Echoed as is. */
export const UDP_MAGIC = 0x77656674; // "weft"

/**
 * The probe server: HTTP on every address of the node (`GET /` answers who it is; `GET /status` this node's probe
 * results, which `/api/keepalive/matrix` of any node gathers), and, when enabled, a UDP echo for the loss probe.
 */
export class ProbeServer {
  private http: Server | undefined;
  private udp: Socket | undefined;
  /** Whom the UDP echo answers: the cluster's nodes, on any plane (set from every reconcile). */
  private known: (address: string) => boolean = () => false;
  /** `/status` as sent, for half a second: a flood of it costs one rendering per half second. */
  private statusText: { at: number; text: string } | undefined;

  constructor(
    private readonly answer: ProbeAnswer,
    private readonly status: () => unknown,
    /** Told of each UDP probe datagram not echoed because its source is not a node of the cluster. */
    private readonly refusedEcho: () => void = () => undefined,
  ) {}

  async start(host: string, port: number, udpPort: number | undefined): Promise<void> {
    const body = `${JSON.stringify(this.answer)}\n`;
    const server = nodeHttp().createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET') {
        res.writeHead(405).end();
      } else if (path === '/') {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }).end(body);
      } else if (path === '/status') {
        const now = performance.now();
        if (!this.statusText || now - this.statusText.at >= 500) this.statusText = { at: now, text: JSON.stringify(this.status()) };
        const text = this.statusText.text;
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }).end(text);
      } else {
        res.writeHead(404).end();
      }
    });
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 5_000;
    server.requestTimeout = 10_000;
    server.maxConnections = MAX_PROBE_CONNECTIONS;
    await listen(server, host, port);
    this.http = server;
    if (udpPort !== undefined) {
      const udp = await bindUdp(host, udpPort);
      udp.on('message', (msg, rinfo) => {
        // Echo probe datagrams from the cluster's nodes only: anyone else could use this node to reflect traffic.
        if (msg.length !== 24 || msg.readUInt32BE(0) !== UDP_MAGIC) return;
        if (!this.known(unmapped(rinfo.address))) {
          this.refusedEcho();
          return;
        }
        udp.send(msg, rinfo.port, rinfo.address);
      });
      this.udp = udp;
    }
  }

  /** Sets whom the UDP echo answers. */
  setKnown(known: (address: string) => boolean): void {
    this.known = known;
  }

  async stop(): Promise<void> {
    const http = this.http;
    this.http = undefined;
    if (http) {
      await new Promise<void>((r) => {
        http.close(() => r());
        http.closeAllConnections();
      });
    }
    const udp = this.udp;
    this.udp = undefined;
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
  }
}

/** Listens on `host`; `::` is every address (IPv4 too), or `0.0.0.0` where the namespace has no IPv6. */
async function listen(server: Server, host: string, port: number): Promise<void> {
  const attempt = (host: string) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port, ipv6Only: false }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  try {
    await attempt(host);
  } catch (err) {
    if (host !== '::' || ((err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT' && (err as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL')) throw err;
    await attempt('0.0.0.0');
  }
}

async function bindUdp(host: string, port: number): Promise<Socket> {
  const attempt = (type: 'udp6' | 'udp4', address: string) =>
    new Promise<Socket>((resolve, reject) => {
      const s = createSocket({ type, ipv6Only: false });
      s.once('error', (err) => {
        s.close();
        reject(err);
      });
      s.bind(port, address, () => resolve(s));
    });
  if (host !== '::') return attempt(host.includes(':') ? 'udp6' : 'udp4', host);
  try {
    return await attempt('udp6', '::');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT' && (err as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw err;
    return attempt('udp4', '0.0.0.0');
  }
}
