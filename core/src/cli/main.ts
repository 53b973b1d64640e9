import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { describeError } from '../api/errors.js';
import { parseDuration } from '../api/schema.js';
import type { PluginCommand, PluginDefinition } from '../api/plugin.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import { DEFAULT_CONFIG_PATH } from '../config/schema.js';
import { loadCatalogPlugins, loadPlugin, pluginCatalog } from '../config/plugin-loader.js';
import { createLogger } from '../observe/logger.js';
import { registerLabCommands } from './lab.js';
import { table } from './table.js';
import { WEFT_VERSION } from '../runtime/version.js';

/** Where the CLI writes; tests capture it. */
export interface CliIO {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
}

const defaultIO: CliIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
};

/** Exit codes: 0 fine, 1 failure at run time, 2 bad usage or bad config. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

class ExitWith extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

function configOption(): Option {
  return new Option('-c, --config <path>', 'the config file, or a directory of *.yaml files (a mounted ConfigMap)').default(DEFAULT_CONFIG_PATH).env('WEFT_CONFIG');
}

/**
 * The CLI. Each command imports what it runs when it runs (`weft run` loads the agent, not the planner, the
 * cleanup, the doctor or the schema writer): start-up is paid on every node at every restart.
 */
function buildProgram(io: CliIO): { program: Command; addPluginCommands: (plugins: readonly PluginDefinition[]) => void } {
  const program = new Command('weft')
    .description('weft: a node network agent for Kubernetes')
    .version(WEFT_VERSION, '-V, --version')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  const fail = (err: unknown): never => {
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      throw new ExitWith(EXIT.usage);
    }
    io.err(`weft: ${describeError(err)}\n`);
    throw new ExitWith(EXIT.failed);
  };

  program
    .command('run')
    .description('run the agent: discover nodes, reconcile every enabled plugin, serve /metrics and the API')
    .addOption(configOption())
    .action(async (opts: { config: string }) => {
      try {
        const { runAgent } = await import('../runtime/run.js');
        const agent = await runAgent({ configPath: opts.config, env: io.env, ownProcess: true });
        await agent.stopped;
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('plan')
    .description('print the kernel changes each plugin would make now, and change nothing')
    .addOption(configOption())
    .option('--json', 'print the plan as JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      try {
        const loaded = await loadConfigFile(opts.config, { env: io.env });
        const logger = createLogger({ level: 'warn', format: 'json' }, process.stderr);
        const { formatPlan, planConfig, planToJson } = await import('../runtime/plan.js');
        const plans = await planConfig(loaded, { env: io.env, logger });
        io.out(opts.json ? `${JSON.stringify(planToJson(plans), null, 2)}\n` : formatPlan(plans));
        if (plans.some((p) => p.error !== undefined)) throw new ExitWith(EXIT.failed);
      } catch (err) {
        if (err instanceof ExitWith) throw err;
        fail(err);
      }
    });

  program
    .command('cleanup')
    .description("remove weft's annotations from this node and everything the configured plugins own in the kernel")
    .addOption(configOption())
    .option('--keep-kernel', 'remove the annotations only; leave the data plane')
    .action(async (opts: { config: string; keepKernel?: boolean }) => {
      try {
        const loaded = await loadConfigFile(opts.config, { env: io.env });
        const logger = createLogger({ level: 'warn', format: 'json' }, process.stderr);
        const { cleanupNode, formatCleanup } = await import('../runtime/cleanup.js');
        io.out(formatCleanup(await cleanupNode(loaded, { env: io.env, logger, keepKernel: opts.keepKernel === true })));
      } catch (err) {
        fail(err);
      }
    });

  program
    .command('doctor')
    .description('report what this kernel and machine support (link kinds, MPLS, nftables, tools) and how to fix what is missing')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { formatDoctor, probeMachine } = await import('../kernel/capabilities.js');
      const report = await probeMachine();
      io.out(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report));
    });

  const config = program.command('config').description('check and describe config files');
  config
    .command('validate')
    .description('validate a config file or directory (exit 0 when valid, 2 with file:line:col errors when not)')
    .argument('[path]', 'the config file, or a directory of *.yaml files', DEFAULT_CONFIG_PATH)
    .option('--import-timeout <duration>', 'how long a plugin module may take to load (e.g. 10s)', '10s')
    .action(async (file: string, opts: { importTimeout: string }) => {
      const timeoutMs = parseDuration(opts.importTimeout);
      if (timeoutMs === undefined || timeoutMs <= 0) {
        io.err(`weft: --import-timeout: expected a duration like 10s or 500ms, got ${JSON.stringify(opts.importTimeout)}\n`);
        throw new ExitWith(EXIT.usage);
      }
      try {
        // A plugin module is imported with a time limit, and a process.exit() it calls while loading is its error.
        const loaded = await loadConfigFile(file, { env: io.env, resolvePlugin: (origin) => loadPlugin(origin, { timeoutMs, guardExit: true }) });
        const names = loaded.plugins.map((p) => p.name);
        io.out(`${file}: valid (${names.length} plugin${names.length === 1 ? '' : 's'} enabled${names.length ? `: ${names.join(', ')}` : ''})\n`);
      } catch (err) {
        fail(err);
      }
    });
  config
    .command('schema')
    .description('print the JSON Schema of weft.yaml (for yaml-language-server), or write it with --out')
    .option('-o, --out <file>', 'write the schema to this file')
    .option('--check', 'with --out: exit 1 when the file differs from the schema instead of writing it')
    .action(async (opts: { out?: string; check?: boolean }) => {
      const { configJsonSchema } = await import('../config/json-schema.js');
      const text = `${JSON.stringify(configJsonSchema(await loadCatalogPlugins()), null, 2)}\n`;
      if (!opts.out) return io.out(text);
      if (opts.check) {
        const current = await readFile(opts.out, 'utf8').catch(() => '');
        if (current !== text) {
          io.err(`${opts.out} is out of date; run npm run schema\n`);
          throw new ExitWith(EXIT.failed);
        }
        return io.out(`${opts.out} is up to date\n`);
      }
      await mkdir(dirname(opts.out), { recursive: true });
      await writeFile(opts.out, text);
      io.out(`wrote ${opts.out}\n`);
    });

  program
    .command('plugins')
    .description('list the plugins this weft carries, and the plugins a config names')
    .addOption(new Option('-c, --config <path>', 'also list the plugins this config (file or directory) enables').env('WEFT_CONFIG'))
    .action(async (opts: { config?: string }) => {
      const rows: string[][] = [['NAME', 'SOURCE', 'STATUS', 'DESCRIPTION']];
      for (const p of pluginCatalog()) {
        const status = p.status !== 'available' ? `planned (${p.status.planned})` : p.load || resolvable(p.module) ? 'available' : 'not installed';
        rows.push([p.name, p.module, status, p.description]);
      }
      if (opts.config) {
        try {
          const loaded = await loadConfigFile(opts.config, { env: io.env });
          for (const p of loaded.plugins) {
            const row = rows.find((r) => r[0] === p.name);
            if (row) row[2] = 'enabled in config';
            else rows.push([p.name, p.host.module ?? '-', 'enabled in config', p.definition.description]);
          }
        } catch (err) {
          fail(err);
        }
      }
      io.out(table(rows));
      if (rows.length === 1) io.out('(this weft carries no plugins of its own: name one with module: <package or path> in a config, and list it with --config)\n');
    });

  const agentOptions = (cmd: Command) =>
    cmd
      .addOption(configOption())
      .option('--url <url>', "the agent's API, e.g. http://127.0.0.1:9471 (default: from the config's http.socket or http.listen)")
      .option('--lab <node>', "a lab node's agent (weft lab), e.g. n1")
      .option('--lab-name <name>', 'the lab, with --lab', 'lab');
  registerLabCommands(program, {
    out: io.out,
    err: io.err,
    fail,
    exit: (code) => {
      throw new ExitWith(code);
    },
  });

  // `weft <plugin> <command>`: what plugins declare in `commands`, each asking the agent for one of its routes.
  const addPluginCommands = (plugins: readonly PluginDefinition[]) => {
    const taken = new Set(program.commands.map((c) => c.name()));
    for (const plugin of plugins) {
      if (!plugin.commands?.length || taken.has(plugin.name)) continue;
      taken.add(plugin.name);
      const group = program.command(plugin.name).description(plugin.description);
      for (const command of plugin.commands) addPluginCommand(group, plugin.name, command);
    }
  };
  const addPluginCommand = (group: Command, plugin: string, command: PluginCommand) => {
    const cmd = group.command(command.name).description(command.description);
    for (const a of command.arguments ?? []) cmd.argument(`<${a.name}>`, a.description);
    agentOptions(cmd).action(async (...given: unknown[]) => {
      const args = given.slice(0, command.arguments?.length ?? 0) as string[];
      const opts = given[args.length] as { config: string; url?: string; lab?: string; labName: string };
      try {
        const path = command.path(args);
        if (typeof path !== 'string' || !path.startsWith('/')) throw new Error(`plugin "${plugin}": command ${command.name} made the path ${JSON.stringify(path)}; expected one starting with /`);
        const { agentGet, agentTarget } = await import('./agent-api.js');
        io.out(await agentGet(await agentTarget(opts, io.env), `/api/${plugin}${path}`));
      } catch (err) {
        fail(err);
      }
    });
  };

  return { program, addPluginCommands };
}

/** True when `module` resolves from here (an installed package or a path). */
function resolvable(module: string): boolean {
  try {
    import.meta.resolve(module);
    return true;
  } catch {
    return false;
  }
}

/**
 * The plugins whose commands the CLI offers for this command line: none when the first word is one of the core's
 * own commands (`weft run` loads no plugin it does not run); otherwise the catalog's, and the plugins of the config
 * named by `--config` or `WEFT_CONFIG`.
 */
async function commandPlugins(argv: readonly string[], program: Command, io: CliIO): Promise<PluginDefinition[]> {
  const words = argv.slice(2);
  const first = words.find((w) => !w.startsWith('-'));
  const core = new Set(program.commands.flatMap((c) => [c.name(), ...c.aliases()]));
  if (first !== undefined && core.has(first)) return [];
  if (first === undefined && !words.some((w) => w === '-h' || w === '--help')) return [];
  const plugins = await loadCatalogPlugins().catch((err: unknown): PluginDefinition[] => {
    io.err(`weft: the plugins' commands are missing: ${describeError(err)}\n`);
    return [];
  });
  const at = words.findIndex((w) => w === '-c' || w === '--config' || w.startsWith('--config='));
  const file = at < 0 ? io.env.WEFT_CONFIG : words[at]?.startsWith('--config=') ? words[at]?.slice('--config='.length) : words[at + 1];
  if (file) {
    const loaded = await loadConfigFile(file, { env: io.env }).catch(() => undefined);
    for (const p of loaded?.plugins ?? []) if (!plugins.some((q) => q.name === p.name)) plugins.push(p.definition);
  }
  return plugins;
}

/** Runs the CLI with `argv` (as in `process.argv`); resolves with the exit code. */
export async function main(argv: readonly string[], io: CliIO = defaultIO): Promise<number> {
  const { program, addPluginCommands } = buildProgram(io);
  try {
    addPluginCommands(await commandPlugins(argv, program, io));
    await program.parseAsync([...argv]);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof ExitWith) return err.code;
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      return EXIT.usage;
    }
    io.err(`weft: ${describeError(err)}\n`);
    return EXIT.failed;
  }
}
