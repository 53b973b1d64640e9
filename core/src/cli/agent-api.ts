import { join } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import { parseListen } from '../config/schema.js';
import { DEFAULT_LAB_ROOT } from '../lab/topology.js';
import { type AgentTarget, httpGet } from '../observe/http-get.js';

export type { AgentTarget };

/**
 * The agent to ask: `--url`, else a lab node's socket (`--lab NODE`), else what the config file says (`http.socket`,
 * else `http.listen` with a wildcard host read as loopback).
 */
export async function agentTarget(opts: { url?: string; lab?: string; labName?: string; config: string }, env: NodeJS.ProcessEnv): Promise<AgentTarget> {
  if (opts.url) return { url: opts.url.replace(/\/+$/, '') };
  if (opts.lab) return { socket: join(DEFAULT_LAB_ROOT, opts.labName ?? 'lab', opts.lab, 'http.sock') };
  const config = await loadConfigFile(opts.config, { env });
  if (config.core.http.socket) return { socket: config.core.http.socket };
  const listen = config.core.http.listen ? parseListen(config.core.http.listen) : undefined;
  if (!listen) throw new Error(`${opts.config}: the agent serves no HTTP (http.listen and http.socket are null)`);
  const host = listen.host === '0.0.0.0' || listen.host === '' ? '127.0.0.1' : listen.host === '::' ? '::1' : listen.host;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${String(listen.port)}` };
}

/** GET a path of the agent's API; rejects with what the agent said when it does not answer 200. */
export async function agentGet(target: AgentTarget, path: string): Promise<string> {
  const where = 'socket' in target ? target.socket : target.url;
  let res: { status: number; body: string };
  try {
    res = await httpGet(target, path, 10_000);
  } catch (err) {
    throw new Error(`cannot reach the agent at ${where}: ${(err as Error).message}`);
  }
  if (res.status === 200) return res.body;
  let message = res.body.trim();
  try {
    const e = (JSON.parse(res.body) as { error?: unknown }).error;
    if (typeof e === 'string') message = e;
  } catch {
    // not JSON
  }
  throw new Error(`${where}${path}: HTTP ${String(res.status)}: ${message}`);
}
