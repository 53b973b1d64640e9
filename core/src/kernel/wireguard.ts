import { connect } from 'node:net';
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
    const fields = new Set(change.fields ?? []);
    const part: string[] = [];
    if (change.kind === 'wireguard') {
      const d = change.object as WireGuardDevice;
      if (fields.has('privateKey')) part.push('private-key', secretFile(d.privateKey));
      if (fields.has('listenPort') && d.listenPort !== undefined) part.push('listen-port', String(d.listenPort));
      if (fields.has('fwmark')) part.push('fwmark', d.fwmark ? String(d.fwmark) : 'off');
      if (part.length > 0) push(part);
      continue;
    }
    const p = change.object as NPeer & { device: string };
    part.push('peer', p.publicKey);
    if (change.op === 'delete') {
      push([...part, 'remove']);
      continue;
    }
    const all = change.op === 'add';
    if (all ? p.presharedKey !== undefined : fields.has('presharedKey')) part.push('preshared-key', p.presharedKey ? secretFile(p.presharedKey) : '/dev/null');
    if (p.endpoint !== undefined && (all || fields.has('endpoint'))) part.push('endpoint', p.endpoint);
    if (all ? p.allowedIPs.length > 0 : fields.has('allowedIPs')) {
      const list = p.allowedIPs.join(',');
      if (list.length <= WG_ALLOWED_IPS_ARG_MAX) part.push('allowed-ips', list);
      else conf.push(`[Peer]\nPublicKey = ${p.publicKey}\nAllowedIPs = ${p.allowedIPs.join(', ')}\n`);
    }
    if (all ? p.persistentKeepalive > 0 : fields.has('persistentKeepalive')) part.push('persistent-keepalive', p.persistentKeepalive ? String(p.persistentKeepalive) : 'off');
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
