import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import { startFakeApiServer, type KubeObject } from '../testing/fake-apiserver.js';

/**
 * The lab's API server (`weft lab up --discovery kubernetes`): the project's fake API server, run as its own process
 * in the lab's `api` namespace so that every node reaches it over the lab's underlay, and driven by the lab through a
 * root-only Unix socket in the lab's directory:
 *
 * - `POST /down`, `POST /up` — stop serving (every connection dropped, new ones refused) and serve again; the
 *   objects and their history stay, so watches resume from their last version, as after an API server restart;
 * - `PUT /nodes/NAME` — create or replace a Node (what a kubelet registering does); `?ifAbsent=true`: only when
 *   there is none, so that an agent's published annotations survive its restart;
 * - `DELETE /nodes/NAME` — delete a Node (`kubectl delete node`);
 * - `GET /status` — `{ serving, nodes, patches, requests }`: `patches` counts Node PATCH requests since start;
 * - `GET /nodes` — the Node objects as the server holds them.
 */
export interface LabApiStatus {
  readonly serving: boolean;
  readonly nodes: number;
  /** Node PATCH requests served since the server started: what the agents wrote. */
  readonly patches: number;
  /** Requests of any kind since the server started. */
  readonly requests: number;
}

/** Starts the lab's API server and its control socket; resolves once both serve. */
export async function serveLabApi(options: { host: string; port: number; token: string; controlSocket: string }): Promise<{ close(): Promise<void> }> {
  let serving = true;
  let patches = 0;
  let requests = 0;
  // Counted, not kept: the lab's server runs for hours.
  const onRequest = (r: { method: string }) => {
    requests += 1;
    if (r.method === 'PATCH') patches += 1;
  };
  const api = await startFakeApiServer({ host: options.host, port: options.port, token: options.token, keepRequests: 0, onRequest });
  await rm(options.controlSocket, { force: true });
  const control: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => reply(res, 500, { error: err instanceof Error ? err.message : String(err) }));
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://control');
    const node = /^\/nodes\/([a-z0-9][a-z0-9.-]{0,252})$/.exec(url.pathname)?.[1];
    if (req.method === 'POST' && url.pathname === '/down') {
      if (serving) await api.stop();
      serving = false;
      return reply(res, 200, status());
    }
    if (req.method === 'POST' && url.pathname === '/up') {
      if (!serving) await api.start();
      serving = true;
      return reply(res, 200, status());
    }
    if (req.method === 'GET' && url.pathname === '/status') return reply(res, 200, status());
    if (req.method === 'GET' && url.pathname === '/nodes') return reply(res, 200, api.objects('nodes'));
    if (node !== undefined && req.method === 'PUT') {
      const object = JSON.parse(await body(req)) as KubeObject;
      if (object.metadata?.name !== node) return reply(res, 400, { error: `the object's metadata.name is not ${node}` });
      const exists = api.objects('nodes').some((o) => o.metadata.name === node);
      if (!(exists && url.searchParams.get('ifAbsent') === 'true')) api.put('nodes', object);
      return reply(res, 200, { created: !exists });
    }
    if (node !== undefined && req.method === 'DELETE') {
      api.remove('nodes', node);
      return reply(res, 200, {});
    }
    return reply(res, 404, { error: `no ${req.method ?? ''} ${url.pathname}` });
  };
  const status = (): LabApiStatus => ({ serving, nodes: api.objects('nodes').length, patches, requests });
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    control.listen({ path: options.controlSocket, readableAll: false, writableAll: false }, () => resolve());
  });
  return {
    async close() {
      await new Promise<void>((resolve) => control.close(() => resolve()));
      await api.close();
      await rm(options.controlSocket, { force: true });
    },
  };
}

/** A request to a lab API server's control socket; throws with its error when it does not answer 200. */
export async function labApiControl<T>(controlSocket: string, method: string, path: string, payload?: unknown, timeoutMs = 5_000): Promise<T> {
  const text = payload === undefined ? undefined : JSON.stringify(payload);
  return new Promise<T>((resolve, reject) => {
    const req = request({ socketPath: controlSocket, method, path, timeout: timeoutMs, headers: text === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      body(res).then((b) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(b) as unknown;
        } catch {
          parsed = { error: b };
        }
        if (res.statusCode === 200) resolve(parsed as T);
        else {
          const error = (parsed as { error?: unknown }).error;
          reject(new Error(`lab API server: ${method} ${path}: ${typeof error === 'string' ? error : `HTTP ${String(res.statusCode)}`}`));
        }
      }, reject);
    });
    req.on('timeout', () => req.destroy(new Error(`lab API server: ${method} ${path}: no answer in ${String(timeoutMs)} ms`)));
    req.on('error', (err) => reject(new Error(`lab API server (${controlSocket}): ${err.message}`)));
    req.end(text);
  });
}

async function body(stream: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function reply(res: ServerResponse, code: number, value: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(value));
}
