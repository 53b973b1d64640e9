import type { IncomingMessage } from 'node:http';
import { nodeHttp } from './node-http.js';

/** Where an agent's API is: a Unix socket, or a base URL (`http://198.18.1.11:9471`, `http://[2001:db8::1]:9471`). */
export type AgentTarget = { readonly socket: string } | { readonly url: string };

/** How long a GET may take, and how much it may read. */
export interface HttpGetOptions {
  /** The whole exchange — connecting, the answer, its body — ends with an error after this many milliseconds. */
  readonly timeoutMs: number;
  /** An answer whose body is over this many bytes ends the exchange with an error (a broken or hostile peer). */
  readonly maxBytes?: number;
}

/** Why a GET failed: the peer could not be reached, did not answer in time, or answered too much. */
export class HttpGetError extends Error {
  constructor(
    readonly reason: 'unreachable' | 'timeout' | 'too-large',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HttpGetError';
  }
}

/**
 * GET a path of an agent's API — this node's over its Unix socket, or another node's over TCP (agent to agent):
 * resolves with the status and body whatever the status; rejects with an {@link HttpGetError} when the agent cannot
 * be reached, has not answered within `timeoutMs`, or sends more than `maxBytes`. No connection is kept.
 */
export function httpGet(target: AgentTarget, path: string, options: number | HttpGetOptions): Promise<{ status: number; body: string }> {
  const { timeoutMs, maxBytes = Number.POSITIVE_INFINITY } = typeof options === 'number' ? { timeoutMs: options } : options;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, value?: { status: number; body: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(value as { status: number; body: string });
    };
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) finish(new HttpGetError('too-large', `the answer is over ${String(maxBytes)} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => finish(new HttpGetError('unreachable', err.message, { cause: err })));
    };
    const headers = { Connection: 'close' };
    const req =
      'socket' in target
        ? nodeHttp().request({ socketPath: target.socket, path, agent: false, headers }, onResponse)
        : nodeHttp().request(new URL(path, `${target.url}/`), { agent: false, headers }, onResponse);
    const timer = setTimeout(() => finish(new HttpGetError('timeout', `no answer within ${String(timeoutMs)} ms`)), timeoutMs);
    req.on('error', (err) => finish(new HttpGetError('unreachable', err.message, { cause: err })));
    req.end();
  });
}
