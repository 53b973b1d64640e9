import { readFileSync } from 'node:fs';
import type { Agent as HttpAgent, IncomingMessage, request as httpRequest } from 'node:http';
import type * as NodeHttps from 'node:https';
import type { KubeConfig, RequestContext, fetch as undiciFetch } from './kube-full.js';
import { homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';
import { StringDecoder } from 'node:string_decoder';
import { parse as parseYaml } from 'yaml';
import type { Logger } from '../observe/logger.js';
import { nodeHttp } from '../observe/node-http.js';

/**
 * What weft needs of the Kubernetes API: list a collection, watch it, merge-patch the own Node — on Node's own
 * `http`/`https`. What it costs matters because an agent runs on every node: the full `@kubernetes/client-node`
 * costs ~60 MiB RSS on import (its `KubeConfig` module loads every generated API model), and the `undici` it speaks
 * through another ~20 MiB and ~0.15 s of start-up (its HTTP parser is WebAssembly, compiled at start). This module
 * reads in-cluster credentials and plain kubeconfigs itself and loads the full client (with undici) only for a
 * kubeconfig that needs what the lean reader does not do (exec plugins, auth providers, proxies).
 */

/** A failed API request: the HTTP status and the API's own `Status` message when it sent one. */
export class KubeApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** A Kubernetes object as the source reads it: what it keys and versions by, the rest left as it came. */
export interface KubeObject {
  readonly metadata?: { readonly name?: string; readonly namespace?: string; readonly resourceVersion?: string; readonly [k: string]: unknown };
  readonly [k: string]: unknown;
}

interface KubeList {
  readonly items?: KubeObject[];
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
}

/** TLS settings of a connection to the API server (PEM text). */
export interface KubeTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly rejectUnauthorized?: false;
  readonly servername?: string;
}

/** What the lean client connects with: the server, its TLS settings and how requests authenticate. */
export interface KubeCredentials {
  readonly server: string;
  readonly tls: KubeTls;
  /** A fixed bearer token, a file holding one (re-read every minute: bound tokens rotate), or basic auth. */
  readonly token: { readonly value?: string; readonly file?: string; readonly basic?: string };
}

/** The `Authorization` header of a request made with `credentials` (reading a token file at most once a minute). */
export function authorizer(credentials: KubeCredentials): () => string | undefined {
  const { token } = credentials;
  let cached: { value: string; at: number } | undefined;
  return () => {
    if (token.value !== undefined) return `Bearer ${token.value}`;
    if (token.file !== undefined) {
      if (!cached || performance.now() - cached.at > 60_000) cached = { value: readFileSync(token.file, 'utf8').trim(), at: performance.now() };
      return `Bearer ${cached.value}`;
    }
    return token.basic !== undefined ? `Basic ${token.basic}` : undefined;
  };
}

/** An answer's status and body, as a stream. */
interface Opened {
  readonly status: number;
  readonly body: Readable;
}

/** How requests reach the API server. */
interface Transport {
  readonly server: string;
  open(method: string, path: string, signal: AbortSignal, body?: { type: string; text: string }): Promise<Opened>;
}

/** Requests on Node's own `http`/`https`, with keep-alive connections. */
class NodeTransport implements Transport {
  private constructor(
    readonly server: string,
    private readonly request: typeof httpRequest,
    private readonly agent: HttpAgent,
    private readonly authorization: () => string | undefined,
  ) {}

  static async create(credentials: KubeCredentials): Promise<NodeTransport> {
    const server = credentials.server.replace(/\/+$/, '');
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      throw new Error(`the API server address ${JSON.stringify(credentials.server)} is not a URL`);
    }
    if (url.protocol === 'https:') {
      // Through `require`, as `node:http` (observe/node-http.ts): no ES module facade reading every export.
      const https = createRequire(import.meta.url)('node:https') as typeof NodeHttps;
      const agent = new https.Agent({ keepAlive: true, ...credentials.tls });
      return new NodeTransport(server, https.request, agent, authorizer(credentials));
    }
    if (url.protocol !== 'http:') throw new Error(`the API server address ${server} is neither https nor http`);
    return new NodeTransport(server, nodeHttp().request, new (nodeHttp().Agent)({ keepAlive: true }), authorizer(credentials));
  }

  open(method: string, path: string, signal: AbortSignal, body?: { type: string; text: string }): Promise<Opened> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    const authorization = this.authorization();
    if (authorization !== undefined) headers.Authorization = authorization;
    if (body) headers['Content-Type'] = body.type;
    return new Promise<Opened>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason as Error);
      let answer: IncomingMessage | undefined;
      const req = this.request(`${this.server}${path}`, { method, agent: this.agent, headers }, (res: IncomingMessage) => {
        answer = res;
        resolve({ status: res.statusCode ?? 0, body: res });
      });
      // Not http's own `signal` option: it also destroys the connection when the answer is complete and the
      // keep-alive agent holds it again (an error on an idle socket that nobody listens to). A complete answer is
      // left to end on its own.
      const abort = () => {
        if (!answer?.complete) req.destroy(signal.reason as Error);
      };
      signal.addEventListener('abort', abort, { once: true });
      req.once('close', () => signal.removeEventListener('abort', abort));
      req.on('error', reject);
      req.end(body?.text);
    });
  }
}

/** Requests through the full client library (its `KubeConfig` authenticates each one) and the undici it uses. */
class FullClientTransport implements Transport {
  private constructor(
    readonly server: string,
    private readonly config: KubeConfig,
    private readonly fetch: typeof undiciFetch,
    private readonly requestContext: typeof RequestContext,
  ) {}

  static async create(path: string): Promise<FullClientTransport> {
    const full = await import('./kube-full.js');
    const kc = new full.KubeConfig();
    kc.loadFromFile(path);
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error(`kubeconfig ${path}: no current cluster`);
    return new FullClientTransport(cluster.server.replace(/\/+$/, ''), kc, full.fetch, full.RequestContext);
  }

  async open(method: string, path: string, signal: AbortSignal, body?: { type: string; text: string }): Promise<Opened> {
    const url = `${this.server}${path}`;
    const ctx = new this.requestContext(url, method as never);
    await this.config.applySecurityAuthentication(ctx);
    const res = await this.fetch(url, {
      method,
      headers: { ...ctx.getHeaders(), Accept: 'application/json', ...(body ? { 'Content-Type': body.type } : {}) },
      ...(body ? { body: body.text } : {}),
      dispatcher: ctx.getDispatcher() as never,
      signal,
    });
    return { status: res.status, body: res.body ? Readable.fromWeb(res.body as never) : Readable.from([]) };
  }
}

/** The most of one answer (a list page) the client reads, and of one watch event. */
const MAX_BODY_BYTES = 256 * 1024 * 1024;
const MAX_EVENT_BYTES = 16 * 1024 * 1024;

/** Reads a whole body as text, refusing more than `max` bytes. */
function readBody(body: Readable, what: string, max = MAX_BODY_BYTES): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        body.destroy();
        reject(new Error(`${what}: the answer is larger than ${String(max / 1048576)} MiB`));
      } else chunks.push(chunk);
    });
    body.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    body.on('error', reject);
  });
}

/** The `Status` message of a refused request, when the body is one. */
function statusMessage(text: string): string | undefined {
  try {
    const status = JSON.parse(text) as { message?: unknown };
    return typeof status.message === 'string' ? status.message : undefined;
  } catch {
    return undefined;
  }
}

/** The API client the kubernetes source uses: list (paged), watch, merge patch. */
export class KubeClient {
  private constructor(
    private readonly transport: Transport,
    /** Where the credentials came from, for logs: `in-cluster`, a kubeconfig path, `(full client) …`. */
    readonly origin: string,
  ) {}

  /**
   * Credentials from `kubeconfig` when given, else in-cluster (when `KUBERNETES_SERVICE_HOST` is set), else
   * `$KUBECONFIG` (its first path), else `~/.kube/config`.
   */
  static async load(kubeconfig: string | undefined, logger: Logger): Promise<KubeClient> {
    if (kubeconfig === undefined && process.env.KUBERNETES_SERVICE_HOST !== undefined) {
      return new KubeClient(await NodeTransport.create(inClusterCredentials()), 'in-cluster');
    }
    const path = kubeconfig ?? process.env.KUBECONFIG?.split(':').find((p) => p !== '') ?? join(homedir(), '.kube', 'config');
    const lean = kubeconfigCredentials(path);
    if (lean.credentials) return new KubeClient(await NodeTransport.create(lean.credentials), path);
    logger.info({ kubeconfig: path, needs: lean.needs }, 'the kubeconfig needs the full Kubernetes client library (about 80 MiB more memory)');
    return new KubeClient(await FullClientTransport.create(path), `(full client) ${path}`);
  }

  /** The API server's base URL. */
  get server(): string {
    return this.transport.server;
  }

  /** Every object of a collection, following `continue` tokens; with the list's resourceVersion. */
  async list(path: string, signal?: AbortSignal): Promise<{ items: KubeObject[]; resourceVersion: string }> {
    const items: KubeObject[] = [];
    let token: string | undefined;
    let resourceVersion = '';
    do {
      const query = new URLSearchParams({ limit: '500', ...(token ? { continue: token } : {}) });
      const page = (await this.request('GET', `${path}?${query.toString()}`, undefined, signal)) as KubeList;
      items.push(...(page.items ?? []));
      // A paged list is one consistent snapshot: its version is the first page's.
      if (resourceVersion === '') resourceVersion = page.metadata?.resourceVersion ?? '';
      token = page.metadata?.continue || undefined;
    } while (token !== undefined);
    return { items, resourceVersion };
  }

  /** A JSON merge patch (RFC 7386) of one object. */
  async mergePatch(path: string, patch: unknown): Promise<KubeObject> {
    return (await this.request('PATCH', path, { type: 'application/merge-patch+json', text: JSON.stringify(patch) })) as KubeObject;
  }

  /**
   * Watches a collection from `resourceVersion`. Calls `onEvent` per event and `done` once when the stream ends
   * (`null`: closed cleanly; an error otherwise — also when the returned controller aborts it). A stream silent for
   * 30 s longer than `timeoutSeconds` (after which the server ends it) is aborted as dead. Resolves once the request
   * is under way, with a handle to abort it.
   */
  async watch(
    path: string,
    resourceVersion: string,
    timeoutSeconds: number,
    onEvent: (type: string, object: KubeObject) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    const query = new URLSearchParams({ watch: 'true', resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) });
    const idleMs = (timeoutSeconds + 30) * 1000;
    let timer: NodeJS.Timeout | undefined;
    // One timer for the watch's life, pushed back at every chunk (refresh: no new timer per event).
    const arm = () => {
      if (finished) return;
      if (timer !== undefined) {
        timer.refresh();
        return;
      }
      timer = setTimeout(() => controller.abort(new Error(`watch ${path}: silent for ${String(idleMs / 1000)} s`)), idleMs);
      timer.unref();
    };
    let finished = false;
    const finish = (err: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      controller.abort();
      done(err);
    };
    arm();
    let opened: Opened;
    try {
      opened = await this.transport.open('GET', `${path}?${query.toString()}`, controller.signal);
    } catch (err) {
      finish(controller.signal.reason instanceof Error && controller.signal.aborted ? controller.signal.reason : err);
      return controller;
    }
    const { status, body } = opened;
    if (status !== 200) {
      readBody(body, `watch ${path}`, 1024 * 1024).then(
        (text) => finish(new KubeApiError(status, `watch ${path}: HTTP ${String(status)}${((m) => (m ? `: ${m}` : ''))(statusMessage(text))}`)),
        finish,
      );
      return controller;
    }
    const decoder = new StringDecoder('utf8');
    let partial = '';
    body.on('data', (chunk: Buffer) => {
      arm();
      const lines = (partial + decoder.write(chunk)).split('\n');
      partial = lines.pop() ?? '';
      if (partial.length > MAX_EVENT_BYTES) return void body.destroy(new Error(`watch ${path}: an event larger than ${String(MAX_EVENT_BYTES / 1048576)} MiB`));
      for (const line of lines) {
        if (finished || controller.signal.aborted) return;
        if (line.trim() === '') continue;
        let event: { type?: unknown; object?: unknown };
        try {
          event = JSON.parse(line) as typeof event;
        } catch {
          return void body.destroy(new Error(`watch ${path}: a line that is not JSON: ${line.slice(0, 80)}`));
        }
        if (typeof event.type !== 'string' || typeof event.object !== 'object' || event.object === null) {
          return void body.destroy(new Error(`watch ${path}: an event without type or object: ${line.slice(0, 80)}`));
        }
        onEvent(event.type, event.object as KubeObject);
      }
    });
    body.once('end', () => finish(null));
    body.on('error', (err) => finish(controller.signal.aborted && controller.signal.reason instanceof Error ? controller.signal.reason : err));
    body.once('close', () => finish(controller.signal.aborted ? (controller.signal.reason ?? new Error(`watch ${path}: aborted`)) : null));
    return controller;
  }

  /**
   * Whether the API server answers at all (any HTTP status counts: it is up), within `timeoutMs`. Cheap enough to
   * ask every half second while it is down, so that the source is back within a second of its return.
   */
  async reachable(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    try {
      const { body } = await this.transport.open('GET', '/version', within(timeoutMs, signal));
      await readBody(body, '/version', 1024 * 1024);
      return true;
    } catch {
      return false;
    }
  }

  private async request(method: string, path: string, body?: { type: string; text: string }, signal?: AbortSignal): Promise<unknown> {
    const { status, body: answer } = await this.transport.open(method, path, within(30_000, signal), body);
    const text = await readBody(answer, `${method} ${path}`);
    if (status < 200 || status > 299) {
      const message = statusMessage(text);
      throw new KubeApiError(status, `${method} ${path}: HTTP ${String(status)}${message !== undefined ? `: ${message}` : ''}`);
    }
    return JSON.parse(text) as unknown;
  }
}

/** A signal that aborts after `ms`, or with `signal`. */
function within(ms: number, signal?: AbortSignal): AbortSignal {
  return signal ? AbortSignal.any([signal, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms);
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

/** In-cluster: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` with the service account's token and CA. */
export function inClusterCredentials(root = SERVICE_ACCOUNT): KubeCredentials {
  const host = process.env.KUBERNETES_SERVICE_HOST ?? '';
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    tls: { ca: readFileSync(join(root, 'ca.crt'), 'utf8') },
    token: { file: join(root, 'token') },
  };
}

type Named<T> = { name?: unknown; cluster?: T; user?: T; context?: T };
type Fields = Record<string, unknown>;

/** Keys of a kubeconfig's cluster and user that the lean reader handles; anything else needs the full client. */
const CLUSTER_KEYS = new Set(['server', 'certificate-authority', 'certificate-authority-data', 'insecure-skip-tls-verify', 'tls-server-name', 'extensions']);
const USER_KEYS = new Set(['token', 'tokenFile', 'client-certificate', 'client-certificate-data', 'client-key', 'client-key-data', 'username', 'password', 'extensions']);

/**
 * A kubeconfig's current context, when it uses only what the lean reader handles (token, token file, client
 * certificate, basic auth, CA, insecure-skip-tls-verify, tls-server-name); otherwise what it needs.
 */
export function kubeconfigCredentials(path: string): { credentials?: KubeCredentials; needs?: string } {
  let doc: Fields;
  try {
    doc = (parseYaml(readFileSync(path, 'utf8')) ?? {}) as Fields;
  } catch (err) {
    throw new Error(`kubeconfig ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const named = (key: string, name: unknown, inner: 'cluster' | 'user' | 'context'): Fields => {
    const list = Array.isArray(doc[key]) ? (doc[key] as Named<Fields>[]) : [];
    const hit = list.find((e) => e.name === name)?.[inner];
    if (!hit) throw new Error(`kubeconfig ${path}: ${inner} ${JSON.stringify(name)} is not defined under ${key}`);
    return hit;
  };
  const contextName = doc['current-context'];
  if (typeof contextName !== 'string' || contextName === '') throw new Error(`kubeconfig ${path}: no current-context`);
  const context = named('contexts', contextName, 'context');
  const cluster = named('clusters', context.cluster, 'cluster');
  const user = context.user === undefined ? {} : named('users', context.user, 'user');
  const extra = [...Object.keys(cluster).filter((k) => !CLUSTER_KEYS.has(k)), ...Object.keys(user).filter((k) => !USER_KEYS.has(k))];
  if (extra.length > 0) return { needs: extra.join(', ') };
  if (typeof cluster.server !== 'string' || cluster.server === '') throw new Error(`kubeconfig ${path}: cluster ${JSON.stringify(context.cluster)} has no server`);

  const base = dirname(resolve(path));
  const material = (data: unknown, file: unknown): string | undefined => {
    if (typeof data === 'string') return Buffer.from(data, 'base64').toString('utf8');
    if (typeof file === 'string') return readFileSync(resolve(base, file), 'utf8');
    return undefined;
  };
  const ca = material(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = material(user['client-certificate-data'], user['client-certificate']);
  const key = material(user['client-key-data'], user['client-key']);
  const basic = typeof user.username === 'string' ? Buffer.from(`${user.username}:${typeof user.password === 'string' ? user.password : ''}`).toString('base64') : undefined;
  return {
    credentials: {
      server: cluster.server,
      tls: {
        ...(ca !== undefined ? { ca } : {}),
        ...(cert !== undefined ? { cert } : {}),
        ...(key !== undefined ? { key } : {}),
        ...(cluster['insecure-skip-tls-verify'] === true ? { rejectUnauthorized: false as const } : {}),
        ...(typeof cluster['tls-server-name'] === 'string' ? { servername: cluster['tls-server-name'] } : {}),
      },
      token: {
        ...(typeof user.token === 'string' ? { value: user.token } : {}),
        ...(typeof user.tokenFile === 'string' ? { file: resolve(base, user.tokenFile) } : {}),
        ...(basic !== undefined ? { basic } : {}),
      },
    },
  };
}
