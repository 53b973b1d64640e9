import type { IncomingMessage } from 'node:http';
import { http } from './node-http.js';

/** Where an agent's API is: a Unix socket, or a base URL. */
export type AgentTarget = { readonly socket: string } | { readonly url: string };

/**
 * GET a path of an agent's API (over its Unix socket or TCP): resolves with the status and body whatever the
 * status; rejects when the agent cannot be reached or does not answer within `timeoutMs`.
 */
export function httpGet(target: AgentTarget, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    };
    const req =
      'socket' in target
        ? http.request({ socketPath: target.socket, path, timeout: timeoutMs }, onResponse)
        : http.request(new URL(path, `${target.url}/`), { timeout: timeoutMs }, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${String(timeoutMs / 1000)} s`)));
    req.on('error', reject);
    req.end();
  });
}
