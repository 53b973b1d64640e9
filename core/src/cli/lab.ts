import { open, stat } from 'node:fs/promises';
import { type Command, InvalidArgumentError, Option } from 'commander';
import type { LabApiServerStatus, LabStatus } from '../lab/lab.js';
import { LAB_LIMITS, type LabDiscovery } from '../lab/topology.js';
import { table } from './table.js';

/** What the lab commands need from the CLI around them. */
export interface LabCliContext {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Reports an error and ends the command (exit 1). */
  readonly fail: (err: unknown) => never;
  /** Ends the command with this exit code. */
  readonly exit: (code: number) => never;
}

const int = (name: string, max: number) => (value: string) => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > max) throw new InvalidArgumentError(`${name}: expected an integer 1-${String(max)}, got "${value}"`);
  return n;
};

const nameOption = () => new Option('--name <name>', 'the lab (several can be up side by side)').default('lab');

/** `weft lab up|status|exec|logs|api|down`. */
export function registerLabCommands(program: Command, ctx: LabCliContext): void {
  const lab = program
    .command('lab')
    .description('a weft cluster on this machine: a network namespace per node, real links, real agents (root)')
    .addHelpText('after', '\nSee the README, "The local lab". Everything the lab makes lives in namespaces named wlab-<name>-… and under /run/weft-lab/<name>.');

  lab
    .command('up')
    .description('build the lab and start an agent per node; prints the status once converged (again: changes nothing)')
    .option('--nodes <n>', 'nodes n1…nN', int('--nodes', LAB_LIMITS.nodes), 3)
    .option('--locations <l>', 'locations, each with its own switch and subnet, joined by a router', int('--locations', LAB_LIMITS.locations), 1)
    .option('--nat', 'every location but the first behind a NAT router (nftables masquerade)', false)
    .option('--pods <p>', 'pods per node: NODE:pod, NODE:pod2, …', int('--pods', LAB_LIMITS.pods), 1)
    .option('--client', 'an outside client behind the router (192.0.2.2; "weft lab exec client"), with VIPs routed to nodes by ECMP ("weft lab vip")', false)
    .addOption(
      new Option('--discovery <source>', "where agents learn of the nodes: a folder of node documents, or the lab's own API server (Node objects, watch, patches)")
        .choices(['directory', 'kubernetes'])
        .default('directory'),
    )
    .option('-c, --config <file>', "a weft config whose plugins, reconcile and log sections replace the lab's defaults")
    .option('--timeout <seconds>', 'how long to wait for the agents to converge', int('--timeout', 3600), 60)
    .addOption(nameOption())
    .action(async (opts: { nodes: number; locations: number; nat: boolean; pods: number; client: boolean; discovery: LabDiscovery; config?: string; timeout: number; name: string }) => {
      const { Lab } = await import('../lab/lab.js');
      let status: LabStatus;
      try {
        const l = await Lab.up({
          name: opts.name,
          nodes: opts.nodes,
          locations: opts.locations,
          nat: opts.nat,
          pods: opts.pods,
          client: opts.client,
          discovery: opts.discovery,
          config: opts.config,
          timeoutMs: opts.timeout * 1000,
        });
        status = await l.status();
      } catch (err) {
        ctx.fail(err);
      }
      ctx.out(formatLabStatus(status));
      if (!status.converged) {
        ctx.err(`weft lab: not converged after ${String(opts.timeout)} s (see above); the lab stays up — "weft lab logs NODE", or "weft lab down"\n`);
        ctx.exit(1);
      }
    });

  lab
    .command('label')
    .description('set (key=value) or remove (key-) labels of a node, as kubectl label node does (what selectors pick)')
    .argument('<node>', 'the node, n1…nN')
    .argument('<labels...>', 'key=value to set, key- to remove')
    .addOption(nameOption())
    .action(async (node: string, specs: string[], opts: { name: string }) => {
      const { Lab } = await import('../lab/lab.js');
      const labels: Record<string, string | null> = {};
      for (const spec of specs) {
        const eq = spec.indexOf('=');
        if (eq > 0) labels[spec.slice(0, eq)] = spec.slice(eq + 1);
        else if (spec.endsWith('-') && spec.length > 1) labels[spec.slice(0, -1)] = null;
        else ctx.fail(new InvalidArgumentError(`"${spec}": expected key=value or key-`));
      }
      try {
        await Lab.attach(opts.name).label(node, labels);
      } catch (err) {
        ctx.fail(err);
      }
    });

  lab
    .command('vip')
    .description("route a VIP from the router to these nodes by ECMP (their BGP sessions up); none withdraws it (needs --client)")
    .argument('<vip>', 'the VIP, an IPv4 address')
    .argument('[nodes...]', 'the nodes that announce it, n1…nN')
    .addOption(nameOption())
    .action(async (vip: string, nodes: string[], opts: { name: string }) => {
      const { Lab } = await import('../lab/lab.js');
      try {
        await Lab.attach(opts.name).routeVip(vip, nodes);
      } catch (err) {
        ctx.fail(err);
      }
    });

  lab
    .command('service')
    .description("declare a Service with annotations and pod endpoints, as the API server would hold it (replaces the lab's Services)")
    .argument('<name>', "the Service's name (namespace default)")
    .option('-a, --annotation <key=value...>', 'an annotation (repeatable)')
    .option('-e, --endpoint <pod...>', 'a ready endpoint pod, NODE:pod or NODE:podN (repeatable)')
    .addOption(nameOption())
    .action(async (name: string, opts: { annotation?: string[]; endpoint?: string[]; name: string }) => {
      const { Lab } = await import('../lab/lab.js');
      const annotations: Record<string, string> = {};
      for (const spec of opts.annotation ?? []) {
        const eq = spec.indexOf('=');
        if (eq <= 0) ctx.fail(new InvalidArgumentError(`"${spec}": expected key=value`));
        annotations[spec.slice(0, eq)] = spec.slice(eq + 1);
      }
      try {
        await Lab.attach(opts.name).declareServices([{ name, annotations, endpoints: (opts.endpoint ?? []).map((pod) => ({ pod })) }]);
      } catch (err) {
        ctx.fail(err);
      }
    });

  lab
    .command('status')
    .description('per node: addresses, pod, agent, what it sees, its plugins; the lab settings')
    .option('--json', 'as JSON: {"lab", "options", "settings", "converged", "problems", "nodes": [...]}')
    .addOption(nameOption())
    .action(async (opts: { json?: boolean; name: string }) => {
      const { Lab } = await import('../lab/lab.js');
      try {
        const s = await Lab.attach(opts.name).status();
        ctx.out(opts.json ? `${JSON.stringify(s, null, 2)}\n` : formatLabStatus(s));
      } catch (err) {
        ctx.fail(err);
      }
    });

  lab
    .command('exec')
    .description('run a command in a node (NODE), one of its pods (NODE:pod, NODE:pod2) or the outside client (client); exits with its exit code')
    .argument('<target>', 'n1, n1:pod, n1:pod2, or client')
    .argument('<command...>', 'the command and its arguments (after --)')
    .addOption(nameOption())
    .action(async (target: string, command: string[], opts: { name: string }) => {
      const { Lab } = await import('../lab/lab.js');
      let code: number;
      try {
        code = (await Lab.attach(opts.name).exec(target, command, { stdio: 'inherit', timeoutMs: 0 })).exitCode;
      } catch (err) {
        ctx.fail(err);
      }
      ctx.exit(code);
    });

  lab
    .command('logs')
    .description("a node's agent log (JSON lines)")
    .argument('<node>', 'n1, n2, …')
    .option('-f, --follow', 'keep printing as the log grows (Ctrl-C stops)')
    .addOption(nameOption())
    .action(async (node: string, opts: { follow?: boolean; name: string }) => {
      const { Lab } = await import('../lab/lab.js');
      let file: string;
      try {
        file = Lab.attach(opts.name).logFile(node);
      } catch (err) {
        ctx.fail(err);
      }
      await printLog(file, opts.follow === true, ctx.out);
    });

  lab
    .command('api')
    .description("the lab's API server (--discovery kubernetes): take it down as in an outage, bring it back, or show it")
    .argument('<action>', 'down, up or status')
    .addOption(nameOption())
    .action(async (action: string, opts: { name: string }) => {
      const { Lab } = await import('../lab/lab.js');
      try {
        if (!['down', 'up', 'status'].includes(action)) throw new Error(`weft lab api: expected down, up or status, got "${action}"`);
        const l = Lab.attach(opts.name);
        if (action === 'down') await l.apiDown();
        if (action === 'up') await l.apiUp();
        const a = await l.apiStatus();
        ctx.out(`${formatApi(a)}\n`);
      } catch (err) {
        ctx.fail(err);
      }
    });

  lab
    .command('down')
    .description('remove the lab: agents, wireguard-go, namespaces, mounts, files (also after a crash; idempotent)')
    .addOption(nameOption())
    .action(async (opts: { name: string }) => {
      const { Lab } = await import('../lab/lab.js');
      try {
        const r = await Lab.down(opts.name);
        ctx.out(r.namespaces === 0 && r.processes === 0 ? `lab "${opts.name}": nothing to remove\n` : `lab "${opts.name}": removed ${String(r.namespaces)} namespaces and ${String(r.processes)} processes\n`);
      } catch (err) {
        ctx.fail(err);
      }
    });
}

/** Prints a file from the start; with `follow`, keeps printing what is appended until the process is stopped. */
async function printLog(file: string, follow: boolean, out: (text: string) => void): Promise<void> {
  let offset = 0;
  for (;;) {
    const size = (await stat(file).catch(() => undefined))?.size ?? 0;
    if (size < offset) offset = 0; // truncated
    if (size > offset) {
      const fh = await open(file, 'r');
      try {
        const buf = Buffer.alloc(size - offset);
        await fh.read(buf, 0, buf.length, offset);
        out(buf.toString('utf8'));
      } finally {
        await fh.close();
      }
      offset = size;
    }
    if (!follow) return;
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The status as a table: one row per node, then what keeps the lab from converging. */
export function formatLabStatus(s: LabStatus): string {
  const o = s.options;
  const head =
    `lab "${s.lab}": ${String(o.nodes)} node${o.nodes === 1 ? '' : 's'}, ${String(o.locations)} location${o.locations === 1 ? '' : 's'}${o.nat ? ', NAT' : ''}` +
    ` · discovery ${String(s.settings.discovery)}, resync ${String(s.settings.resync)}` +
    (typeof s.settings.directoryRescan === 'string' ? `, directory rescan ${s.settings.directoryRescan}` : '') +
    ` · ${s.converged ? 'converged' : 'NOT converged'}`;
  const rows = [['NODE', 'LOCATION', 'UNDERLAY', 'NAT', 'POD CIDR', 'POD', 'AGENT', 'READY', 'SEES', 'HTTP', 'PLUGINS']];
  for (const n of s.nodes) {
    const plugins = Object.entries(n.plugins).map(([name, st]) => `${name}: ${st.summary}`);
    rows.push([
      n.name,
      n.location,
      n.underlay,
      n.natAddress ?? '-',
      n.podCIDR,
      n.pod,
      n.agent === 'running' ? `running ${String(n.pid)}` : 'dead',
      n.agent === 'running' ? (n.ready ? 'yes' : 'no') : '-',
      n.nodesSeen === null ? '-' : `${String(n.nodesSeen)}/${String(o.nodes)}`,
      n.http,
      plugins.length > 0 ? plugins.join('; ') : '-',
    ]);
  }
  const problems = s.problems.map((p) => `  ! ${p}\n`).join('');
  const api = s.api ? `${formatApi(s.api)}\n` : '';
  return `${head}\n${api}${table(rows)}${problems}${matrices(s)}`;
}

/**
 * Matrices from plugins whose status carries a `row` (per plane, per target: a short cell), one row per node: the
 * probe matrix of a prober, for one.
 */
function matrices(s: LabStatus): string {
  const out: string[] = [];
  const plugins = [...new Set(s.nodes.flatMap((n) => Object.keys(n.plugins)))].sort();
  for (const plugin of plugins) {
    const rowOf = (n: LabStatus['nodes'][number]) => n.plugins[plugin]?.row;
    const planes = [...new Set(s.nodes.flatMap((n) => Object.keys(rowOf(n) ?? {})))];
    for (const plane of planes) {
      const rows = [[`${plugin} ${plane}`, ...s.nodes.map((n) => n.name)]];
      for (const n of s.nodes) {
        const row = rowOf(n)?.[plane];
        rows.push([n.name, ...s.nodes.map((t) => (t.name === n.name ? '—' : row?.[t.name] ?? (row ? '·' : '?')))]);
      }
      out.push(table(rows));
    }
  }
  return out.length > 0 ? `\n${out.join('\n')}` : '';
}

/** The lab's API server in one line. */
function formatApi(a: LabApiServerStatus): string {
  if (a.state === 'dead') return `API server ${a.url}: not running`;
  return `API server ${a.url}: ${a.state} (pid ${String(a.pid)}), ${String(a.nodes)} nodes, ${String(a.patches)} node patches since start`;
}
