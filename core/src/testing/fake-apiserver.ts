import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * An in-process Kubernetes API server that speaks real HTTP, strict where a real one is strict, for the kubernetes
 * discovery source's tests:
 * - list (`GET /api/v1/nodes`) with a `resourceVersion`; watch (`?watch=true&resourceVersion=N`) as a chunked
 *   stream of JSON lines, replaying history after N, then live events;
 * - a watch from a version older than the retained history gets an `ERROR` event with status 410 (Expired), as
 *   after an etcd compaction;
 * - `PATCH /api/v1/nodes/NAME` only as `application/merge-patch+json` (415 otherwise), RFC 7386 semantics;
 * - every request must carry `Authorization: Bearer <token>` (401 otherwise), the token the kubeconfig names;
 * - a list honours `limit` (capped at `pageSize`) and hands out `continue` tokens, one snapshot across pages;
 * - `stop()` drops every connection and refuses new ones; `start()` serves again on the same port.
 */
export interface FakeApiServer {
  readonly url: string;
  /**
   * Adds or replaces an object (a new resourceVersion, an ADDED or MODIFIED event). `unseen`: live watches do not
   * get the event (as if their stream had stalled); a watch started later from an older version replays it.
   */
  put(resource: Resource, object: KubeObject, options?: { unseen?: boolean }): void;
  /** Deletes an object (a DELETED event). */
  remove(resource: Resource, name: string, namespace?: string): void;
  /** Current objects of a resource. */
  objects(resource: Resource): KubeObject[];
  /** Forgets the event history and ends every live watch, so that a watch from an older version gets 410. */
  compact(): void;
  /** Ends every live watch cleanly (as a server's watch timeout does); clients re-watch from their last version. */
  endWatches(): void;
  /** A kubeconfig file's text that points at this server. */
  kubeconfig(): string;
  /** Every request seen: method, path and query, content type. */
  readonly requests: { method: string; url: string; contentType: string | undefined }[];
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

export type Resource = 'nodes' | 'services' | 'endpointslices';
export type KubeObject = { metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown }; [k: string]: unknown };

const PATHS: Record<string, Resource> = {
  '/api/v1/nodes': 'nodes',
  '/api/v1/services': 'services',
  '/apis/discovery.k8s.io/v1/endpointslices': 'endpointslices',
};
const KINDS: Record<Resource, { kind: string; apiVersion: string }> = {
  nodes: { kind: 'Node', apiVersion: 'v1' },
  services: { kind: 'Service', apiVersion: 'v1' },
  endpointslices: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1' },
};

/** A kubeconfig file's text for a fake API server at `server` (plain HTTP) with a bearer token. */
export function fakeKubeconfig(server: string, token: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{name: fake, cluster: {server: ${JSON.stringify(server)}, insecure-skip-tls-verify: true}}]`,
    `users: [{name: weft, user: {token: ${token}}}]`,
    'contexts: [{name: fake, context: {cluster: fake, user: weft}}]',
    'current-context: fake',
    '',
  ].join('\n');
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export interface FakeApiServerOptions {
  /** The largest page a list returns, whatever `limit` asks (default 500). */
  readonly pageSize?: number;
  /** The bearer token requests must carry (default `fake-token`). */
  readonly token?: string;
  /** The address to listen on (default 127.0.0.1). */
  readonly host?: string;
  /** The port to listen on (default: any free one). */
  readonly port?: number;
  /** How many of the last requests {@link FakeApiServer.requests} keeps (default: all). */
  readonly keepRequests?: number;
  /** Called with every request as it arrives (before it is authenticated). */
  readonly onRequest?: (request: FakeApiServer['requests'][number]) => void;
}

export async function startFakeApiServer(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const token = options.token ?? 'fake-token';
  const pageSize = options.pageSize ?? 500;
  const host = options.host ?? '127.0.0.1';
  const keepRequests = options.keepRequests ?? Infinity;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  /** Snapshots handed out to paged lists, by continue token. */
  const pages = new Map<string, { rv: number; items: KubeObject[] }>();
  let rv = 100;
  const store: Record<Resource, Map<string, KubeObject>> = { nodes: new Map(), services: new Map(), endpointslices: new Map() };
  let history: { resource: Resource; rv: number; type: string; object: KubeObject }[] = [];
  let oldest = rv;
  const watchers = new Set<{ resource: Resource; res: ServerResponse }>();
  const sockets = new Set<Socket>();
  const requests: FakeApiServer['requests'] = [];
  let port = options.port ?? 0;
  let server: Server | undefined;

  const key = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  const emit = (resource: Resource, type: string, object: KubeObject, unseen = false) => {
    history.push({ resource, rv, type, object });
    if (!unseen) for (const w of watchers) if (w.resource === resource) w.res.write(`${JSON.stringify({ type, object })}\n`);
  };
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  };
  const status = (res: ServerResponse, code: number, reason: string, message: string) =>
    send(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const seen = { method: req.method ?? 'GET', url: `${url.pathname}${url.search}`, contentType: req.headers['content-type'] };
    options.onRequest?.(seen);
    requests.push(seen);
    if (requests.length > keepRequests) requests.splice(0, requests.length - keepRequests);
    if (req.headers.authorization !== `Bearer ${token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
    const collection = PATHS[url.pathname];
    if (collection && req.method === 'GET') {
      if (url.searchParams.get('watch') === 'true') {
        const from = Number(url.searchParams.get('resourceVersion') ?? '0');
        res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
        // A real server answers a watch at once and streams later; the client waits for these headers.
        res.flushHeaders();
        if (from < oldest) {
          res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${from} (${oldest})` } })}\n`);
          return;
        }
        for (const e of history) if (e.resource === collection && e.rv > from) res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
        const w = { resource: collection, res };
        watchers.add(w);
        res.on('close', () => watchers.delete(w));
        return;
      }
      const { kind, apiVersion } = KINDS[collection];
      const cont = url.searchParams.get('continue');
      const snapshot = cont ? pages.get(cont) : { rv, items: [...store[collection].values()] };
      if (!snapshot) return status(res, 410, 'Expired', 'the provided continue parameter is too old');
      const limit = Math.min(pageSize, Number(url.searchParams.get('limit') ?? pageSize) || pageSize);
      const offset = cont ? Number(cont.split(':')[1]) : 0;
      const page = snapshot.items.slice(offset, offset + limit);
      const metadata: Record<string, string> = { resourceVersion: String(snapshot.rv) };
      if (offset + limit < snapshot.items.length) {
        metadata.continue = `${String(pages.size)}:${String(offset + limit)}`;
        pages.set(metadata.continue, snapshot);
      }
      return send(res, 200, { kind: `${kind}List`, apiVersion, metadata, items: page });
    }
    const nodeMatch = /^\/api\/v1\/nodes\/([^/]+)$/.exec(url.pathname);
    if (nodeMatch && req.method === 'GET') {
      const node = store.nodes.get(`/${decodeURIComponent(nodeMatch[1] as string)}`);
      return node ? send(res, 200, node) : status(res, 404, 'NotFound', `nodes "${nodeMatch[1]}" not found`);
    }
    if (nodeMatch && req.method === 'PATCH') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const type = (req.headers['content-type'] ?? '').split(';')[0];
      if (type !== 'application/merge-patch+json') {
        return status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json (got ${type})`);
      }
      const name = decodeURIComponent(nodeMatch[1] as string);
      const node = store.nodes.get(`/${name}`);
      if (!node) return status(res, 404, 'NotFound', `nodes "${name}" not found`);
      let patch: unknown;
      try {
        patch = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return status(res, 400, 'BadRequest', 'invalid JSON');
      }
      rv += 1;
      const updated = mergePatch(node, patch) as KubeObject;
      updated.metadata = { ...updated.metadata, resourceVersion: String(rv) };
      store.nodes.set(`/${name}`, updated);
      emit('nodes', 'MODIFIED', updated);
      return send(res, 200, updated);
    }
    if (collection || nodeMatch) return status(res, 405, 'MethodNotAllowed', `method ${req.method ?? ''} not allowed`);
    return status(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
  };

  const listen = async () => {
    const s = createServer((req, res) => {
      handle(req, res).catch(() => res.destroy());
    });
    s.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, host, () => {
        s.off('error', reject);
        resolve();
      });
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    for (const w of watchers) w.res.destroy();
    watchers.clear();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();

  return {
    url: `http://${hostInUrl}:${String(port)}`,
    put(resource, object, options = {}) {
      rv += 1;
      const k = key(object);
      const before = store[resource].get(k);
      // As the API server does: creationTimestamp and uid are set when the object is made, and kept by every update.
      const created = before?.metadata.creationTimestamp ?? object.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const uid = (before?.metadata as { uid?: string } | undefined)?.uid ?? (object.metadata as { uid?: string }).uid ?? randomUUID();
      const o = { ...KINDS[resource], ...object, metadata: { ...object.metadata, creationTimestamp: created, uid, resourceVersion: String(rv) } } as KubeObject;
      const existed = before !== undefined;
      store[resource].set(key(o), o);
      emit(resource, existed ? 'MODIFIED' : 'ADDED', o, options.unseen === true);
    },
    remove(resource, name, namespace) {
      const k = `${namespace ?? ''}/${name}`;
      const o = store[resource].get(k);
      if (!o) return;
      store[resource].delete(k);
      rv += 1;
      emit(resource, 'DELETED', { ...o, metadata: { ...o.metadata, resourceVersion: String(rv) } });
    },
    objects: (resource) => [...store[resource].values()],
    compact() {
      history = [];
      oldest = rv;
      for (const w of watchers) w.res.end();
      watchers.clear();
    },
    endWatches() {
      for (const w of watchers) w.res.end();
      watchers.clear();
    },
    kubeconfig: () => fakeKubeconfig(`http://${hostInUrl}:${String(port)}`, token),
    requests,
    stop,
    start: listen,
    close: stop,
  };
}
