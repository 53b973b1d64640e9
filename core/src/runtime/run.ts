import { flushCompileCache, getCompileCacheDir } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { describeError } from '../api/errors.js';
import { loadConfigTexts, readConfig } from '../config/load.js';
import { watchConfig } from '../config/watch.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { Agent, type AgentOptions, StartInterrupted } from './agent.js';
import { MemoryReducer } from './memory-reducer.js';

export interface RunOptions extends AgentOptions {
  readonly configPath: string;
  /** Re-read interval of the config file (default 10 s). */
  readonly configPollMs?: number;
  /** Install SIGTERM/SIGINT handlers (default true). */
  readonly handleSignals?: boolean;
  /**
   * The process is the agent's own (`weft run`): once ready, V8's TurboFan is turned off for the whole process
   * unless the environment says `WEFT_TURBOFAN=on`, and a {@link MemoryReducer} gives back what bursts of work leave
   * behind unless it says `WEFT_MEMORY_REDUCER=off` (see {@link settleOnceReady}). Default false: an agent run inside
   * another program leaves its V8 alone.
   */
  readonly ownProcess?: boolean;
}

/**
 * `weft run`: loads the config (a {@link ConfigError} is thrown before anything starts), starts the agent, applies
 * config changes as they come, and stops on SIGTERM/SIGINT. Resolves with the running agent; `agent.stopped`
 * settles when it has stopped.
 */
export async function runAgent(options: RunOptions): Promise<Agent> {
  const env = options.env ?? process.env;
  const { texts, baseDir } = await readConfig(options.configPath);
  const config = await loadConfigTexts(texts, options.configPath, { env, baseDir });
  const logger = options.logger ?? createLogger(config.core.log);
  const agent = new Agent(config, { ...options, logger });

  // Signals are heard from before the start: a SIGTERM while discovery waits for its first view (or a plugin sets
  // up) stops the agent, says so, and removes its socket, instead of killing the process silently.
  let starting = true;
  if (options.handleSignals !== false) {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal; exiting now');
        process.exit(130);
      }
      logger.info({ signal, duringStartUp: starting }, starting ? 'stopping during start-up' : 'stopping; the data plane stays in place');
      agent.stop().catch((err: unknown) => logger.error({ err: describeError(err) }, 'stop failed'));
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    void agent.stopped.then(() => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    });
  }
  try {
    await agent.start();
  } catch (err) {
    // Stopped by a signal before it was up: that is a stop, not a failure.
    if (err instanceof StartInterrupted) return agent;
    throw err;
  }
  starting = false;
  const own = options.ownProcess === true;
  settleOnceReady(agent, { turbofanOff: own && env['WEFT_TURBOFAN'] !== 'on', reduceMemory: own && env['WEFT_MEMORY_REDUCER'] !== 'off' }, logger);

  const watcher = watchConfig(options.configPath, {
    pollMs: options.configPollMs ?? 10_000,
    onWatchError: (err) => logger.warn({ err: describeError(err) }, 'cannot watch the config directory; polling only'),
    onChange: (changed) => {
      logger.info({ config: options.configPath }, 'config changed; reloading');
      loadConfigTexts(changed, options.configPath, { env, baseDir })
        .then((next) => agent.applyConfig(next))
        .catch((err: unknown) => agent.configRefused(err));
    },
  });
  watcher.initial(texts);
  void agent.stopped.then(() => watcher.close());
  return agent;
}

/** How long after its start an agent that never gets ready still settles (see {@link settleOnceReady}). */
const SETTLE_FALLBACK_MS = 60_000;

/**
 * Once the agent is first ready (or {@link SETTLE_FALLBACK_MS} after its start if it never gets ready), on the next
 * turn — after the reconcile that made it ready has finished:
 * 1. Writes Node's compile cache (`NODE_COMPILE_CACHE`, when set). Node writes it only at a clean exit, which a
 *    killed agent (SIGKILL, OOM, a node's crash) never has; and written after the first reconcile it holds the code
 *    of every function the start ran, not only of the modules' top level, so the next start compiles almost nothing.
 * 2. When `turbofanOff` (`weft run`, see {@link RunOptions.ownProcess}), turns V8's optimising compiler TurboFan
 *    off (`--no-turbofan`; hot functions stop at Maglev). TurboFan's own code is ~4.6 MiB of the `node` executable,
 *    paged in on every node once the agent's hot functions reach it. On the command line the same effect
 *    (`--max-opt=2`) costs the start ~0.08 s: it is in V8's flag hash, and Node's built-in modules ship compiled for
 *    the default flags only. Set here, after the compile cache was written under the start's flags, it costs nothing.
 * 3. When `reduceMemory` (`weft run`), starts the process's {@link MemoryReducer}.
 */
function settleOnceReady(agent: Agent, { turbofanOff, reduceMemory }: { turbofanOff: boolean; reduceMemory: boolean }, logger: Logger): void {
  let reducer: MemoryReducer | undefined;
  let stopped = false;
  let done = false;
  const settle = (): void => {
    if (done) return;
    done = true;
    unsubscribe();
    clearTimeout(fallback);
    setImmediate(() => {
      const cacheDir = getCompileCacheDir();
      if (cacheDir !== undefined) {
        try {
          flushCompileCache();
        } catch {
          // A cache that cannot be written costs the next start some time, nothing else.
        }
      }
      if (turbofanOff) setFlagsFromString('--no-turbofan');
      if (reduceMemory && !stopped) {
        reducer = MemoryReducer.forThisProcess(logger);
        reducer?.start();
      }
      logger.info({ compileCache: cacheDir ?? null, turbofan: !turbofanOff, memoryReducer: reducer !== undefined }, 'settled after the start');
    });
  };
  const unsubscribe = agent.onChange(() => {
    if (agent.readiness().ready) settle();
  });
  const fallback = setTimeout(settle, SETTLE_FALLBACK_MS);
  fallback.unref();
  if (agent.readiness().ready) settle();
  void agent.stopped.then(() => {
    stopped = true;
    unsubscribe();
    clearTimeout(fallback);
    reducer?.stop();
  });
}
