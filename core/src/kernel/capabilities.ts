import { accessSync, constants, existsSync } from 'node:fs';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { WeftError } from '../errors.js';

/** What a plugin can ask the kernel and machine for. */
export type Capability =
  | 'bridge'
  | 'veth'
  | 'vxlan'
  | 'dummy'
  | 'gre'
  | 'ip6gre'
  | 'ipip'
  | 'wireguard'
  | 'mpls'
  | 'nftables'
  | 'netns';

/** One line of `weft doctor`. */
export interface Check {
  readonly name: string;
  readonly ok: boolean;
  /** What was found (a version, a path, the kernel's answer). */
  readonly detail: string;
  /** What to install or load when it is missing. */
  readonly fix?: string;
}

/** The whole report. */
export interface DoctorReport {
  readonly kernel: string;
  readonly checks: readonly Check[];
}

/** The programs `weft doctor` looks for, with how to install each: what the agent runs (tools/programs.mjs, group agent). */
export const DOCTOR_TOOLS: readonly (readonly [string, string])[] = [
  ['ip', 'apt-get install iproute2'],
  ['bridge', 'apt-get install iproute2'],
  ['sysctl', 'apt-get install procps'],
  ['nsenter', 'apt-get install util-linux'],
  ['setpriv', "apt-get install util-linux (it runs the kernel driver's ip monitor; without it every reconcile reads the kernel again)"],
  ['wg', 'apt-get install wireguard-tools'],
  ['wireguard-go', 'apt-get install wireguard-go (only needed where the kernel has no WireGuard module)'],
  ['nft', 'apt-get install nftables'],
];

/** How to get WireGuard where the kernel has none. */
export const WIREGUARD_FIX = 'modprobe wireguard (kernel ≥ 5.6), or install wireguard-go: weft then runs WireGuard in userspace';

const LINKS: readonly [Capability, string[], string][] = [
  ['bridge', ['type', 'bridge'], 'modprobe bridge'],
  ['veth', ['type', 'veth', 'peer', 'name', 'PEER'], 'modprobe veth'],
  ['vxlan', ['type', 'vxlan', 'id', '1', 'dstport', '4789'], 'modprobe vxlan'],
  ['dummy', ['type', 'dummy'], 'modprobe dummy (in Debian kernels; some cloud kernels lack it)'],
  ['gre', ['type', 'gre', 'remote', '192.0.2.1'], 'modprobe ip_gre'],
  ['ip6gre', ['type', 'ip6gre', 'remote', '2001:db8::1'], 'modprobe ip6_gre'],
  ['ipip', ['type', 'ipip', 'remote', '192.0.2.1'], 'modprobe ipip'],
  ['wireguard', ['type', 'wireguard'], WIREGUARD_FIX],
];

/**
 * Finds an executable on PATH without a shell. Synchronous stats (microseconds each): asynchronous ones queued behind
 * the thread pool one directory after the other, which delayed an agent's first kernel read by ~10 ms.
 */
export function which(name: string, path = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return Promise.resolve(candidate);
    } catch {
      // not here
    }
  }
  return Promise.resolve(undefined);
}

const run = (file: string, args: string[], input?: string) => execa(file, args, { reject: false, input, timeout: 20_000, stripFinalNewline: true });

/**
 * Probes what this machine and kernel support, in a throwaway network namespace (root; where none can be made, in
 * this namespace with throwaway links): each link kind, MPLS, nftables, and the tools weft runs; plus the forwarding sysctls of the agent's own namespace. Changes nothing that
 * outlives the probe. `only`: just these capabilities (with the tools, which cost no process), no sysctls — what an
 * agent asks at start, where every process is paid on every node (the whole report took ~15 processes, ~160 ms).
 */
export async function probeMachine(only?: readonly Capability[]): Promise<DoctorReport> {
  const checks: Check[] = [];
  const kernel = release() || 'unknown';
  const wanted = (c: Capability) => only === undefined || only.includes(c);
  for (const [tool, fix] of DOCTOR_TOOLS) {
    const path = await which(tool);
    checks.push(path ? { name: `tool ${tool}`, ok: true, detail: path } : { name: `tool ${tool}`, ok: false, detail: 'not found on PATH', fix });
  }
  const ns = `weft-doctor-${process.pid}`;
  const created = await run('ip', ['netns', 'add', ns]);
  // Where no namespace can be made (a container without CAP_SYS_ADMIN, such as the DaemonSet's: only the pod-side
  // tunnel plugins need one), the probes run in this namespace with throwaway links, removed at once.
  const inHere = created.exitCode !== 0;
  if (inHere) {
    checks.push({ name: 'network namespaces', ok: false, detail: `${created.stderr.split('\n')[0] || 'ip netns add failed'}; probing in this namespace instead`, fix: 'needs root with CAP_SYS_ADMIN (in a container only the pod-side tunnel plugins need it)' });
    await run('ip', ['netns', 'del', ns]);
  } else checks.push({ name: 'network namespaces', ok: true, detail: 'ip netns add works' });
  const ip = (args: string[]) => run('ip', inHere ? args : ['-n', ns, ...args]);
  const inNs = (tool: string, args: string[]) => (inHere ? run(tool, args) : run('ip', ['netns', 'exec', ns, tool, ...args]));
  try {
    for (const [kind, args, fix] of LINKS) {
      if (!wanted(kind)) continue;
      const name = `wd${kind}`;
      const r = await ip(['link', 'add', name, ...args.map((a) => (a === 'PEER' ? `wp${kind}` : a))]);
      if (inHere && r.exitCode === 0) await run('ip', ['link', 'del', name]);
      checks.push(r.exitCode === 0 ? { name: `link ${kind}`, ok: true, detail: 'supported' } : { name: `link ${kind}`, ok: false, detail: r.stderr.split('\n')[0] ?? 'failed', fix });
    }
    if (wanted('mpls')) {
      // Two modules: mpls_router (label routes, net.mpls sysctls) and mpls_iptunnel (routes that push a label, `encap
      // mpls`). The second is tried with a route in the throwaway namespace; in this namespace only looked up.
      const mpls = await inNs('sysctl', ['-n', 'net.mpls.platform_labels']);
      let encap: { ok: boolean; detail: string };
      if (inHere) encap = existsSync('/sys/module/mpls_iptunnel') ? { ok: true, detail: 'mpls_iptunnel loaded' } : { ok: false, detail: 'mpls_iptunnel not loaded' };
      else {
        await ip(['link', 'set', 'lo', 'up']);
        const r = await ip(['route', 'add', '198.18.255.1/32', 'encap', 'mpls', '100', 'dev', 'lo']);
        encap = r.exitCode === 0 ? { ok: true, detail: 'encap mpls routes work' } : { ok: false, detail: `encap mpls refused: ${r.stderr.split('\n')[0] ?? ''}` };
      }
      if (mpls.exitCode !== 0) checks.push({ name: 'mpls', ok: false, detail: `no net.mpls sysctls (mpls_router); ${encap.detail}`, fix: 'modprobe mpls_router mpls_iptunnel (CONFIG_MPLS_ROUTING, CONFIG_MPLS_IPTUNNEL, Linux ≥ 4.3)' });
      else if (!encap.ok) checks.push({ name: 'mpls', ok: false, detail: `net.mpls.platform_labels = ${mpls.stdout}; ${encap.detail}`, fix: 'modprobe mpls_iptunnel (CONFIG_MPLS_IPTUNNEL)' });
      else checks.push({ name: 'mpls', ok: true, detail: `net.mpls.platform_labels = ${mpls.stdout}; ${encap.detail}` });
    }
    if (wanted('nftables')) {
      const nft = await inNs('nft', ['list', 'tables']);
      checks.push(
        nft.exitCode === 0
          ? { name: 'nftables', ok: true, detail: 'nft works' }
          : { name: 'nftables', ok: false, detail: nft.stderr.split('\n')[0] || 'nft failed', fix: 'apt-get install nftables; modprobe nf_tables' },
      );
    }
  } finally {
    if (!inHere) await run('ip', ['netns', 'del', ns]);
  }
  // No WireGuard module is fine where wireguard-go is installed: the driver runs WireGuard in userspace.
  const wg = checks.findIndex((c) => c.name === 'link wireguard' && !c.ok);
  if (wg >= 0 && checks.some((c) => c.name === 'tool wireguard-go' && c.ok)) {
    checks[wg] = { name: 'link wireguard', ok: true, detail: 'no kernel module; weft runs wireguard-go (userspace)' };
  }
  for (const key of only === undefined ? ['net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'] : []) {
    // Informational: plugins that route turn forwarding on themselves (a sysctl in their desired state).
    const r = await run('sysctl', ['-n', key]);
    checks.push({ name: `sysctl ${key}`, ok: r.exitCode === 0, detail: r.exitCode === 0 ? `${r.stdout}${r.stdout === '1' ? '' : ' (plugins that route set it to 1)'}` : r.stderr || 'unreadable' });
  }
  return { kernel, checks };
}

/** The capability a check stands for, if any. */
export function capabilityOf(check: Check): Capability | undefined {
  if (check.name.startsWith('link ')) return check.name.slice(5) as Capability;
  if (check.name === 'mpls' || check.name === 'nftables') return check.name;
  if (check.name === 'network namespaces') return 'netns';
  return undefined;
}

/** `weft doctor`'s table. */
export function formatDoctor(report: DoctorReport): string {
  const rows = report.checks.map((c) => [c.ok ? 'ok' : 'MISSING', c.name, c.ok ? c.detail : `${c.detail}${c.fix ? ` — fix: ${c.fix}` : ''}`]);
  const w0 = Math.max(...rows.map((r) => (r[0] as string).length));
  const w1 = Math.max(...rows.map((r) => (r[1] as string).length));
  return `kernel ${report.kernel}\n${rows.map((r) => `${(r[0] as string).padEnd(w0)}  ${(r[1] as string).padEnd(w1)}  ${r[2] as string}`).join('\n')}\n`;
}

/** Throws WEFT_KERNEL_UNSUPPORTED naming every missing capability and its fix; `plugin` is named in the message. */
export function requireCapabilities(report: DoctorReport, plugin: string, needs: readonly Capability[]): void {
  const missing = report.checks.filter((c) => !c.ok && needs.includes(capabilityOf(c) as Capability));
  if (missing.length === 0) return;
  const lines = missing.map((c) => `${c.name}: ${c.detail}${c.fix ? ` (fix: ${c.fix})` : ''}`);
  throw new WeftError('WEFT_KERNEL_UNSUPPORTED', `plugin "${plugin}" needs what this machine lacks (kernel ${report.kernel}; see weft doctor):\n  ${lines.join('\n  ')}`);
}
