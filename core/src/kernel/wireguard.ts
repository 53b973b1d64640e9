import { connect, type Socket } from 'node:net';
import type { Change, WireGuardDevice, WireGuardDeviceStatus, WireGuardPeerStatus } from './model.js';
import type { NPeer, NWireGuard } from './normalize.js';

/**
 * An `allowed-ips` list longer than this does not go on a command line (Linux refuses one argument over 128 KiB,
 * E2BIG): it goes into a `wg addconf` file, which replaces the peer's allowed IPs with the whole list.
 */
export const WG_ALLOWED_IPS_ARG_MAX = 16 * 1024;
/** One `wg set` carries at most this many bytes of arguments; more changes go into the next one. */
export const WG_SET_ARGS_MAX = 128 * 1024;

/** How one device's changes are written: `wg set` runs in order, then, when there is one, `wg addconf` of `conf`. */
export interface WgWrite {
  readonly sets: readonly (readonly string[])[];
  /** `[Peer]` sections giving peers their long allowed-IP lists (after the sets: the peers exist by then). */
  readonly conf?: string;
}

/**
 * What one change writes, decided once for `wg set` and for wireguard-go's control socket alike: the device's fields,
 * a peer removed, or a peer's fields (an added peer: those it has; a replaced one: those that differ). `presharedKey`
 * empty clears it.
 */
type WgWrites =
  | { readonly kind: 'device'; readonly privateKey?: string; readonly listenPort?: number; readonly fwmark?: number }
  | { readonly kind: 'remove'; readonly publicKey: string }
  | {
      readonly kind: 'peer';
      readonly publicKey: string;
      readonly presharedKey?: string;
      readonly endpoint?: string;
      readonly allowedIPs?: readonly string[];
      readonly persistentKeepalive?: number;
    };

function writesOf(change: Change): WgWrites {
  const fields = new Set(change.fields ?? []);
  if (change.kind === 'wireguard') {
    const d = change.object as WireGuardDevice;
    return {
      kind: 'device',
      ...(fields.has('privateKey') ? { privateKey: d.privateKey } : {}),
      ...(fields.has('listenPort') && d.listenPort !== undefined ? { listenPort: d.listenPort } : {}),
      ...(fields.has('fwmark') ? { fwmark: d.fwmark ?? 0 } : {}),
    };
  }
  const p = change.object as NPeer & { device: string };
  if (change.op === 'delete') return { kind: 'remove', publicKey: p.publicKey };
  const all = change.op === 'add';
  return {
    kind: 'peer',
    publicKey: p.publicKey,
    ...((all ? p.presharedKey !== undefined : fields.has('presharedKey')) ? { presharedKey: p.presharedKey ?? '' } : {}),
    ...(p.endpoint !== undefined && (all || fields.has('endpoint')) ? { endpoint: p.endpoint } : {}),
    ...((all ? p.allowedIPs.length > 0 : fields.has('allowedIPs')) ? { allowedIPs: p.allowedIPs } : {}),
    ...((all ? p.persistentKeepalive > 0 : fields.has('persistentKeepalive')) ? { persistentKeepalive: p.persistentKeepalive } : {}),
  };
}

/**
 * The `wg set` runs (and, for long allowed-IP lists, the `wg addconf` file) for one device's changes, split so no
 * argument and no command line reaches the kernel's limits. Keys never appear on a command line: `secretFile`
 * writes each to a private file and returns its path.
 */
export function wgWritePlan(device: string, changes: readonly Change[], secretFile: (secret: string) => string): WgWrite {
  const sets: string[][] = [];
  let args: string[] = [];
  let size = 0;
  const flush = () => {
    if (args.length > 0) sets.push(['set', device, ...args]);
    args = [];
    size = 0;
  };
  const push = (part: string[]) => {
    const bytes = part.reduce((n, a) => n + Buffer.byteLength(a) + 1, 0);
    if (size > 0 && size + bytes > WG_SET_ARGS_MAX) flush();
    args.push(...part);
    size += bytes;
  };
  const conf: string[] = [];
  for (const change of changes) {
    const w = writesOf(change);
    const part: string[] = [];
    if (w.kind === 'device') {
      if (w.privateKey !== undefined) part.push('private-key', secretFile(w.privateKey));
      if (w.listenPort !== undefined) part.push('listen-port', String(w.listenPort));
      if (w.fwmark !== undefined) part.push('fwmark', w.fwmark ? String(w.fwmark) : 'off');
      if (part.length > 0) push(part);
      continue;
    }
    part.push('peer', w.publicKey);
    if (w.kind === 'remove') {
      push([...part, 'remove']);
      continue;
    }
    if (w.presharedKey !== undefined) part.push('preshared-key', w.presharedKey ? secretFile(w.presharedKey) : '/dev/null');
    if (w.endpoint !== undefined) part.push('endpoint', w.endpoint);
    if (w.allowedIPs !== undefined) {
      const list = w.allowedIPs.join(',');
      if (list.length <= WG_ALLOWED_IPS_ARG_MAX) part.push('allowed-ips', list);
      else conf.push(`[Peer]\nPublicKey = ${w.publicKey}\nAllowedIPs = ${w.allowedIPs.join(', ')}\n`);
    }
    if (w.persistentKeepalive !== undefined) part.push('persistent-keepalive', w.persistentKeepalive ? String(w.persistentKeepalive) : 'off');
    push(part);
  }
  flush();
  return conf.length > 0 ? { sets, conf: conf.join('\n') } : { sets };
}

/** Parses `wg show all dump` into devices, keeping only the given names. */
export function parseWgDump(text: string, names: ReadonlySet<string>): NWireGuard[] {
  const devices = new Map<string, { name: string; privateKey: string; listenPort?: number; fwmark: number; peers: NPeer[] }>();
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    const name = f[0] as string;
    if (!names.has(name)) continue;
    if (f.length === 5) {
      const port = Number(f[3]);
      devices.set(name, { name, privateKey: f[1] === '(none)' ? '' : (f[1] as string), fwmark: f[4] === 'off' ? 0 : Number(f[4]), peers: [], ...(port ? { listenPort: port } : {}) });
    } else if (f.length === 9) {
      const d = devices.get(name);
      if (!d) continue;
      d.peers.push({
        publicKey: f[1] as string,
        allowedIPs: f[4] === '(none)' ? [] : (f[4] as string).split(',').sort(),
        persistentKeepalive: f[8] === 'off' ? 0 : Number(f[8]),
        ...(f[2] !== '(none)' ? { presharedKey: f[2] } : {}),
        ...(f[3] !== '(none)' ? { endpoint: f[3] } : {}),
      });
    }
  }
  return [...devices.values()].map((d) => ({ ...d, peers: d.peers.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1)) }));
}

/** Parses `wg show all dump` into run-time status (public keys, handshakes, transfer), keeping only the given names. */
export function parseWgStatus(text: string, names: ReadonlySet<string>): WireGuardDeviceStatus[] {
  const devices = new Map<string, { name: string; publicKey: string; listenPort: number; peers: WireGuardPeerStatus[] }>();
  for (const line of text.split('\n')) {
    const f = line.split('\t');
    const name = f[0] as string;
    if (!names.has(name)) continue;
    if (f.length === 5) devices.set(name, { name, publicKey: f[2] === '(none)' ? '' : (f[2] as string), listenPort: Number(f[3]) || 0, peers: [] });
    else if (f.length === 9) {
      devices.get(name)?.peers.push({
        publicKey: f[1] as string,
        ...(f[3] !== '(none)' ? { endpoint: f[3] } : {}),
        allowedIPs: f[4] === '(none)' ? [] : (f[4] as string).split(',').sort(),
        latestHandshake: Number(f[5]) || 0,
        receiveBytes: Number(f[6]) || 0,
        transmitBytes: Number(f[7]) || 0,
        persistentKeepalive: f[8] === 'off' ? 0 : Number(f[8]) || 0,
      });
    }
  }
  return [...devices.values()].map((d) => ({ ...d, peers: d.peers.sort((a, b) => (a.publicKey < b.publicKey ? -1 : 1)) }));
}

/** Where wireguard-go keeps its control sockets (one directory for all namespaces of a mount namespace). */
export const WIREGUARD_SOCKET_DIR = '/var/run/wireguard';

/** Whether a unix socket accepts a connection (a live wireguard-go), within a second. */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const client = connect(path);
    const done = (answer: boolean) => {
      clearTimeout(timer);
      client.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), 1_000);
    client.once('connect', () => done(true));
    client.once('error', () => done(false));
  });
}

/** The longest answer read from a control socket (5,000 peers with two allowed IPs each are about 2 MiB). */
const UAPI_MAX_BYTES = 64 * 1024 * 1024;

/** What a control socket answered: the `key=value` lines before `errno=`, and the errno (0: success). */
export interface UapiAnswer {
  readonly lines: readonly string[];
  readonly errno: number;
}

/** Gathers one answer from a control socket: it is complete at `errno=N` and a blank line (nothing before has one). */
class AnswerReader {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly socket: string) {}

  /** Bytes received so far. */
  get received(): number {
    return this.size;
  }

  /** Adds a chunk; returns the answer once it is complete, throws past {@link UAPI_MAX_BYTES}. */
  add(chunk: Buffer): UapiAnswer | undefined {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > UAPI_MAX_BYTES) throw new Error(`${this.socket}: answer longer than ${String(UAPI_MAX_BYTES)} bytes`);
    const last = chunk.length >= 2 ? chunk[chunk.length - 1] === 10 && chunk[chunk.length - 2] === 10 : chunk[0] === 10;
    return last ? this.answer() : undefined;
  }

  /** The answer if the bytes so far make one. */
  answer(): UapiAnswer | undefined {
    const text = Buffer.concat(this.chunks, this.size).toString('utf8');
    const m = /(?:^|\n)errno=(-?\d+)\n\n$/.exec(text);
    return m ? { lines: text.slice(0, m.index).split('\n').filter((l) => l !== ''), errno: Number(m[1]) } : undefined;
  }
}

/**
 * One request on a wireguard-go control socket: the cross-platform configuration protocol that wg(8) itself speaks
 * to userspace implementations (`get=1` to read, `set=1` to write; an answer ends with `errno=N` and a blank line).
 * In the agent's own process: no `wg` to spawn and no key file to write. A connection of its own, closed after.
 */
export function uapiRequest(socket: string, request: string, timeoutMs = 10_000): Promise<UapiAnswer> {
  return new Promise((resolve, reject) => {
    const client = connect(socket);
    const reader = new AnswerReader(socket);
    let settled = false;
    const finish = (err: Error | undefined, answer?: UapiAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.destroy();
      if (err) reject(err);
      else resolve(answer as UapiAnswer);
    };
    const timer = setTimeout(() => finish(new Error(`${socket}: no answer within ${String(timeoutMs)} ms`)), timeoutMs);
    client.once('connect', () => client.end(request));
    client.on('data', (chunk: Buffer) => {
      try {
        const answer = reader.add(chunk);
        if (answer) finish(undefined, answer);
      } catch (err) {
        finish(err as Error);
      }
    });
    client.once('end', () => {
      const answer = reader.answer();
      finish(answer ? undefined : new Error(`${socket}: the answer ended without errno (${String(reader.received)} bytes)`), answer);
    });
    client.once('error', (err) => finish(new Error(`${socket}: ${err.message}`)));
  });
}

/**
 * A kept connection to one control socket for reads: wireguard-go serves request after request on one connection,
 * so a steady reconcile's `get=1` costs no connect and no close. Requests go one at a time. A kept connection that
 * turns out closed before any byte of the answer (the device was re-created meanwhile) is replaced once; a timeout
 * or a broken answer drops the connection. It never keeps the process alive.
 */
export class UapiConnection {
  private socket: Socket | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly timeoutMs = 10_000,
  ) {}

  /**
   * Sends `request` and resolves with its answer. Meant for `get=1`: a request that meets a kept connection closed
   * before any byte of its answer is sent once more, on a new connection; any other failure is the caller's.
   */
  request(request: string): Promise<UapiAnswer> {
    const run = this.queue.then(() => this.send(request, true));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Whether a connection is open now (the socket then exists: wireguard-go closes its connections when it goes). */
  get connected(): boolean {
    return this.socket !== undefined;
  }

  /** Closes the connection (the next request opens a new one). */
  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect(this.path);
      s.unref();
      const failed = (err: Error) => reject(new Error(`${this.path}: ${err.message}`));
      s.once('error', failed);
      s.once('connect', () => {
        s.off('error', failed);
        // While idle: a close or an error only means the next request opens a new connection.
        s.on('error', () => undefined);
        s.once('close', () => {
          if (this.socket === s) this.socket = undefined;
        });
        resolve(s);
      });
    });
  }

  private async send(request: string, mayRetry: boolean): Promise<UapiAnswer> {
    const kept = this.socket !== undefined;
    const s = this.socket ?? (this.socket = await this.open());
    try {
      return await new Promise<UapiAnswer>((resolve, reject) => {
        const reader = new AnswerReader(this.path);
        const done = (err: Error | undefined, answer?: UapiAnswer) => {
          clearTimeout(timer);
          s.off('data', onData);
          s.off('close', onClose);
          if (err) reject(err);
          else resolve(answer as UapiAnswer);
        };
        const onData = (chunk: Buffer) => {
          try {
            const answer = reader.add(chunk);
            if (answer) done(undefined, answer);
          } catch (err) {
            this.close();
            done(err as Error);
          }
        };
        const onClose = () => done(Object.assign(new Error(`${this.path}: the connection closed after ${String(reader.received)} bytes of the answer`), { early: reader.received === 0 }));
        const timer = setTimeout(() => {
          this.close();
          done(new Error(`${this.path}: no answer within ${String(this.timeoutMs)} ms`));
        }, this.timeoutMs);
        s.on('data', onData);
        s.once('close', onClose);
        s.write(request);
      });
    } catch (err) {
      if (this.socket === s && s.destroyed) this.socket = undefined;
      if (mayRetry && kept && (err as { early?: boolean }).early === true) return this.send(request, false);
      throw err;
    }
  }
}

const hexKey = (b64: string) => Buffer.from(b64, 'base64').toString('hex');
const b64Key = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
const ZERO_KEY_HEX = '0'.repeat(64);

/**
 * A `get=1` answer for device `name` as the lines `wg show all dump` prints for it, so that one parser reads both.
 * The device's public key is not in the answer: `publicKey` derives it from the private key.
 */
export function uapiDump(name: string, lines: readonly string[], publicKey: (privateKey: string) => string): string {
  let privateKey = '(none)';
  let port = '0';
  let fwmark = 'off';
  type Peer = { key: string; psk: string; endpoint: string; allowed: string[]; handshake: string; rx: string; tx: string; keepalive: string };
  const peers: Peer[] = [];
  let peer: Peer | undefined;
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    if (k === 'public_key') {
      peer = { key: b64Key(v), psk: '(none)', endpoint: '(none)', allowed: [], handshake: '0', rx: '0', tx: '0', keepalive: 'off' };
      peers.push(peer);
    } else if (peer === undefined) {
      if (k === 'private_key' && v !== ZERO_KEY_HEX) privateKey = b64Key(v);
      else if (k === 'listen_port') port = v;
      else if (k === 'fwmark' && Number(v) > 0) fwmark = `0x${Number(v).toString(16)}`;
    } else if (k === 'preshared_key') peer.psk = v === ZERO_KEY_HEX ? '(none)' : b64Key(v);
    else if (k === 'endpoint') peer.endpoint = v;
    else if (k === 'allowed_ip') peer.allowed.push(v);
    else if (k === 'last_handshake_time_sec') peer.handshake = v;
    else if (k === 'rx_bytes') peer.rx = v;
    else if (k === 'tx_bytes') peer.tx = v;
    else if (k === 'persistent_keepalive_interval') peer.keepalive = Number(v) > 0 ? v : 'off';
  }
  const pub = privateKey === '(none)' ? '(none)' : publicKey(privateKey);
  return [
    [name, privateKey, pub, port, fwmark].join('\t'),
    ...peers.map((p) => [name, p.key, p.psk, p.endpoint, p.allowed.length > 0 ? p.allowed.join(',') : '(none)', p.handshake, p.rx, p.tx, p.keepalive].join('\t')),
  ].join('\n');
}

/**
 * The `set=1` request that makes one device's changes, the same changes {@link wgWritePlan} makes with `wg set`:
 * device fields first (the protocol wants them before any peer), then each peer. One request, however many peers.
 */
export function uapiSetRequest(changes: readonly Change[]): string {
  const device: string[] = [];
  const peers: string[] = [];
  for (const change of changes) {
    const w = writesOf(change);
    if (w.kind === 'device') {
      if (w.privateKey !== undefined) device.push(`private_key=${hexKey(w.privateKey)}`);
      if (w.listenPort !== undefined) device.push(`listen_port=${String(w.listenPort)}`);
      if (w.fwmark !== undefined) device.push(`fwmark=${String(w.fwmark)}`);
      continue;
    }
    peers.push(`public_key=${hexKey(w.publicKey)}`);
    if (w.kind === 'remove') {
      peers.push('remove=true');
      continue;
    }
    if (w.presharedKey !== undefined) peers.push(`preshared_key=${w.presharedKey ? hexKey(w.presharedKey) : ZERO_KEY_HEX}`);
    if (w.endpoint !== undefined) peers.push(`endpoint=${w.endpoint}`);
    if (w.persistentKeepalive !== undefined) peers.push(`persistent_keepalive_interval=${String(w.persistentKeepalive)}`);
    if (w.allowedIPs !== undefined) {
      peers.push('replace_allowed_ips=true');
      for (const ip of w.allowedIPs) peers.push(`allowed_ip=${ip}`);
    }
  }
  return `set=1\n${[...device, ...peers].map((l) => `${l}\n`).join('')}\n`;
}
