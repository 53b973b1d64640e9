import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { describeError } from '../api/errors.js';
import { parseDuration } from '../api/schema.js';
import type { PluginDefinition } from '../api/plugin.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import { DEFAULT_CONFIG_PATH } from '../config/schema.js';
import { BUILTIN_PLUGINS, loadPlugin } from '../runtime/plugin-loader.js';
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
  return new Option('-c, --config <file>', 'the config file').default(DEFAULT_CONFIG_PATH).env('WEFT_CONFIG');
}

/** Loads built-in plugins that exist; the ones still planned are skipped. */
async function availableBuiltins(): Promise<PluginDefinition[]> {
  const out: PluginDefinition[] = [];
  for (const p of BUILTIN_PLUGINS) {
    if (p.status === 'available') out.push(await loadPlugin({ key: p.name, baseDir: process.cwd() }));
  }
  return out;
}

/**
 * The CLI. Each command imports what it runs when it runs (`weft run` loads the agent, not the planner, the
 * cleanup, the doctor or the schema writer): start-up is paid on every node at every restart.
 */
function buildProgram(io: CliIO): Command {
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
    .description('validate a config file (exit 0 when valid, 2 with file:line:col errors when not)')
    .argument('[file]', 'the config file', DEFAULT_CONFIG_PATH)
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
      const text = `${JSON.stringify(configJsonSchema(await availableBuiltins()), null, 2)}\n`;
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
    .description('list the built-in plugins, and the plugins a config names')
    .addOption(new Option('-c, --config <file>', 'also list the plugins this config enables').env('WEFT_CONFIG'))
    .action(async (opts: { config?: string }) => {
      const rows: string[][] = [['NAME', 'SOURCE', 'STATUS', 'DESCRIPTION']];
      for (const p of BUILTIN_PLUGINS) {
        rows.push([p.name, p.module, p.status === 'available' ? 'available' : `planned (${p.status.planned})`, p.description]);
      }
      if (opts.config) {
        try {
          const loaded = await loadConfigFile(opts.config, { env: io.env });
          for (const p of loaded.plugins) {
            if (p.host.module !== undefined) rows.push([p.name, p.host.module, 'enabled in config', p.definition.description]);
            else {
              const row = rows.find((r) => r[0] === p.name);
              if (row) row[2] = 'enabled in config';
            }
          }
        } catch (err) {
          fail(err);
        }
      }
      io.out(table(rows));
    });

  const agentOptions = (cmd: Command) =>
    cmd
      .addOption(configOption())
      .option('--url <url>', "the agent's API, e.g. http://127.0.0.1:9471 (default: from the config's http.socket or http.listen)")
      .option('--lab <node>', "a lab node's agent (weft lab), e.g. n1")
      .option('--lab-name <name>', 'the lab, with --lab', 'lab');
  agentOptions(
    program
      .command('graph')
      .description("print the WireGuard mesh as Graphviz DOT, as a running agent sees it (pipe into `dot -Tsvg`)"),
  ).action(async (opts: { config: string; url?: string; lab?: string; labName: string }) => {
    try {
      const { agentGet, agentTarget } = await import('./agent-api.js');
      io.out(await agentGet(await agentTarget(opts, io.env), '/api/wireguard/graph'));
    } catch (err) {
      fail(err);
    }
  });
  const wg = program.command('wireguard').description('the WireGuard mesh');
  agentOptions(
    wg
      .command('peer-config')
      .description('print a wg-quick config for an external peer of the config, with the cluster as its peers')
      .argument('<name>', "the external peer's name (plugins.wireguard.peers[].name)"),
  ).action(async (name: string, opts: { config: string; url?: string; lab?: string; labName: string }) => {
    try {
      const { agentGet, agentTarget } = await import('./agent-api.js');
      io.out(await agentGet(await agentTarget(opts, io.env), `/api/wireguard/peer-config?name=${encodeURIComponent(name)}`));
    } catch (err) {
      fail(err);
    }
  });

  registerLabCommands(program, {
    out: io.out,
    err: io.err,
    fail,
    exit: (code) => {
      throw new ExitWith(code);
    },
  });

  return program;
}

/** Runs the CLI with `argv` (as in `process.argv`); resolves with the exit code. */
export async function main(argv: readonly string[], io: CliIO = defaultIO): Promise<number> {
  const program = buildProgram(io);
  try {
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
