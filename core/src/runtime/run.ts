import { flushCompileCache, getCompileCacheDir } from 'node:module';
import { dirname, resolve } from 'node:path';
import { describeError } from '../api/errors.js';
import { loadConfigText, readConfigFile } from '../config/load.js';
import { watchConfigFile } from '../config/watch.js';
import { createLogger } from '../observe/logger.js';
import { Agent, type AgentOptions, StartInterrupted } from './agent.js';

export interface RunOptions extends AgentOptions {
  readonly configPath: string;
  /** Re-read interval of the config file (default 10 s). */
  readonly configPollMs?: number;
  /** Install SIGTERM/SIGINT handlers (default true). */
  readonly handleSignals?: boolean;
}

/**
 * `weft run`: loads the config (a {@link ConfigError} is thrown before anything starts), starts the agent, applies
 * config changes as they come, and stops on SIGTERM/SIGINT. Resolves with the running agent; `agent.stopped`
 * settles when it has stopped.
 */
export async function runAgent(options: RunOptions): Promise<Agent> {
  const env = options.env ?? process.env;
  const baseDir = dirname(resolve(options.configPath));
  const text = await readConfigFile(options.configPath);
  const config = await loadConfigText(text, options.configPath, { env, baseDir });
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
  persistCompileCacheOnceReady(agent);

  const watcher = watchConfigFile(options.configPath, {
    pollMs: options.configPollMs ?? 10_000,
    onWatchError: (err) => logger.warn({ err: describeError(err) }, 'cannot watch the config directory; polling only'),
    onChange: (changed) => {
      logger.info({ config: options.configPath }, 'config file changed; reloading');
      loadConfigText(changed, options.configPath, { env, baseDir })
        .then((next) => agent.applyConfig(next))
        .catch((err: unknown) => agent.configRefused(err));
    },
  });
  watcher.initial(text);
  void agent.stopped.then(() => watcher.close());
  return agent;
}

/** How long after its start an agent that never gets ready still writes its compile cache. */
const COMPILE_CACHE_FALLBACK_MS = 60_000;

/**
 * Writes Node's compile cache (`NODE_COMPILE_CACHE`) once the agent is first ready. Node writes it only at a clean
 * exit, which a killed agent (SIGKILL, OOM, a node's crash) never has; and written after the first reconcile it
 * holds the code of every function the start ran, not only of the modules' top level, so the next start compiles
 * almost nothing. Without a cache directory this does nothing.
 */
function persistCompileCacheOnceReady(agent: Agent): void {
  if (getCompileCacheDir() === undefined) return;
  let done = false;
  const flush = (): void => {
    if (done) return;
    done = true;
    unsubscribe();
    clearTimeout(fallback);
    // On the next turn: the reconcile that made the agent ready finishes first (its last functions compiled too).
    setImmediate(() => {
      try {
        flushCompileCache();
      } catch {
        // A cache that cannot be written costs the next start some time, nothing else.
      }
    });
  };
  const unsubscribe = agent.onChange(() => {
    if (agent.readiness().ready) flush();
  });
  const fallback = setTimeout(flush, COMPILE_CACHE_FALLBACK_MS);
  fallback.unref();
  if (agent.readiness().ready) flush();
  void agent.stopped.then(() => {
    unsubscribe();
    clearTimeout(fallback);
  });
}
