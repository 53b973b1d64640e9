import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type * as UndiciModule from 'undici';
import type * as WatchModule from '@kubernetes/client-node/dist/watch.js';
import type { RequestContext as RequestContextClass } from '@kubernetes/client-node/dist/gen/http/http.js';
import type { Logger } from '../observe/logger.js';

type Undici = typeof UndiciModule;

/**
 * What weft needs of the Kubernetes API: list a collection, watch it, merge-patch the own Node. The full
 * `@kubernetes/client-node` costs ~60 MiB RSS on import (its `KubeConfig` module loads every generated API model),
 * on every node of the cluster; this module imports only the client's `Watch` (and undici, which it uses), reads
 * in-cluster credentials and plain kubeconfigs itself, and falls back to the full `KubeConfig` only for a
 * kubeconfig that needs what the lean reader does not do (exec plugins, auth providers, proxies).
 */

/** The part of the client's `RequestContext` that authentication writes to. */
interface AuthTarget {
  setHeaderParam(key: string, value: string): void;
  setDispatcher(dispatcher: unknown): void;
}

/** What the client's `Watch` asks of its config (a subset of `KubeConfig`). */
export interface KubeAuth {
  getCurrentCluster(): { readonly server: string } | null;
  applySecurityAuthentication(context: AuthTarget): Promise<void>;
}

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

/** The API client the kubernetes source uses: list (paged), watch, merge patch. */
export class KubeClient {
  private constructor(
    private readonly auth: KubeAuth,
    private readonly undici: Undici,
    private readonly watchModule: typeof WatchModule,
    private readonly requestContext: typeof RequestContextClass,
    /** Where the credentials came from, for logs: `in-cluster`, a kubeconfig path, `(full client) …`. */
    readonly origin: string,
  ) {}

  /**
   * Credentials from `kubeconfig` when given, else in-cluster (when `KUBERNETES_SERVICE_HOST` is set), else
   * `$KUBECONFIG` (its first path), else `~/.kube/config`.
   */
  static async load(kubeconfig: string | undefined, logger: Logger): Promise<KubeClient> {
    const [undici, watchModule, http] = await Promise.all([
      import('undici'),
      import('@kubernetes/client-node/dist/watch.js'),
      import('@kubernetes/client-node/dist/gen/http/http.js'),
    ]);
    const inCluster = kubeconfig === undefined && process.env.KUBERNETES_SERVICE_HOST !== undefined;
    if (inCluster) return new KubeClient(inClusterAuth(undici), undici, watchModule, http.RequestContext, 'in-cluster');
    const path = kubeconfig ?? process.env.KUBECONFIG?.split(':').find((p) => p !== '') ?? join(homedir(), '.kube', 'config');
    const lean = kubeconfigAuth(path, undici);
    if (lean.auth) return new KubeClient(lean.auth, undici, watchModule, http.RequestContext, path);
    logger.info({ kubeconfig: path, needs: lean.needs }, 'the kubeconfig needs the full Kubernetes client library (about 60 MiB more memory)');
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(path);
    return new KubeClient(kc, undici, watchModule, http.RequestContext, `(full client) ${path}`);
  }

  /** The API server's base URL. */
  get server(): string {
    const cluster = this.auth.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    return cluster.server.replace(/\/+$/, '');
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
    return (await this.request('PATCH', path, { type: 'application/merge-patch+json', body: JSON.stringify(patch) })) as KubeObject;
  }

  /**
   * Watches a collection from `resourceVersion`. Calls `onEvent` per event and `done` once when the stream ends
   * (`null`: closed cleanly). Resolves once the request is under way, with a handle to abort it.
   */
  async watch(
    path: string,
    resourceVersion: string,
    timeoutSeconds: number,
    onEvent: (type: string, object: KubeObject) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const w = new this.watchModule.Watch(this.auth as never);
    // The client aborts a stream that is silent for this long; the server ends it after timeoutSeconds first.
    (w as unknown as { requestTimeoutMs: number }).requestTimeoutMs = (timeoutSeconds + 30) * 1000;
    return w.watch(path, { resourceVersion, allowWatchBookmarks: true, timeoutSeconds }, (type, obj) => onEvent(type, obj as KubeObject), done);
  }

  /**
   * Whether the API server answers at all (any HTTP status counts: it is up), within `timeoutMs`. Cheap enough to
   * ask every half second while it is down, so that the source is back within a second of its return.
   */
  async reachable(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    const url = `${this.server}/version`;
    try {
      const ctx = new this.requestContext(url, 'GET');
      await this.auth.applySecurityAuthentication(ctx);
      const res = await this.undici.fetch(url, {
        method: 'GET',
        headers: { ...ctx.getHeaders(), Accept: 'application/json' },
        dispatcher: ctx.getDispatcher(),
        signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs),
      });
      await res.text();
      return true;
    } catch {
      return false;
    }
  }

  private async request(method: string, path: string, body?: { type: string; body: string }, signal?: AbortSignal): Promise<unknown> {
    const url = `${this.server}${path}`;
    const ctx = new this.requestContext(url, method as never);
    await this.auth.applySecurityAuthentication(ctx);
    const headers: Record<string, string> = { ...ctx.getHeaders(), Accept: 'application/json' };
    if (body) headers['Content-Type'] = body.type;
    const res = await this.undici.fetch(url, {
      method,
      headers,
      ...(body ? { body: body.body } : {}),
      dispatcher: ctx.getDispatcher(),
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(30_000)]) : AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    if (!res.ok) {
      let message = `${method} ${path}: HTTP ${String(res.status)}`;
      try {
        const status = JSON.parse(text) as { message?: unknown };
        if (typeof status.message === 'string') message += `: ${status.message}`;
      } catch {
        // not a Status object
      }
      throw new KubeApiError(res.status, message);
    }
    return JSON.parse(text) as unknown;
  }
}

const SERVICE_ACCOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

/** In-cluster: `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` with the service account's token (re-read every minute: bound tokens rotate) and CA. */
export function inClusterAuth(undici: Pick<Undici, 'Agent'>, root = SERVICE_ACCOUNT): KubeAuth {
  const host = process.env.KUBERNETES_SERVICE_HOST ?? '';
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const dispatcher = new undici.Agent({ connect: { ca: readFileSync(join(root, 'ca.crt'), 'utf8') } });
  return tokenAuth(server, dispatcher, { file: join(root, 'token') });
}

function tokenAuth(server: string, dispatcher: unknown, token: { value?: string; file?: string; basic?: string }): KubeAuth {
  let cached: { value: string; at: number } | undefined;
  const bearer = (): string | undefined => {
    if (token.value !== undefined) return token.value;
    if (token.file === undefined) return undefined;
    if (!cached || performance.now() - cached.at > 60_000) cached = { value: readFileSync(token.file, 'utf8').trim(), at: performance.now() };
    return cached.value;
  };
  return {
    getCurrentCluster: () => ({ server }),
    applySecurityAuthentication: (ctx) => {
      const b = bearer();
      if (b !== undefined) ctx.setHeaderParam('Authorization', `Bearer ${b}`);
      else if (token.basic !== undefined) ctx.setHeaderParam('Authorization', `Basic ${token.basic}`);
      ctx.setDispatcher(dispatcher);
      return Promise.resolve();
    },
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
export function kubeconfigAuth(path: string, undici: Pick<Undici, 'Agent'>): { auth?: KubeAuth; needs?: string } {
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
  const connect = {
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(cluster['insecure-skip-tls-verify'] === true ? { rejectUnauthorized: false } : {}),
    ...(typeof cluster['tls-server-name'] === 'string' ? { servername: cluster['tls-server-name'] } : {}),
  };
  const dispatcher = new undici.Agent({ connect });
  const basic = typeof user.username === 'string' ? Buffer.from(`${user.username}:${typeof user.password === 'string' ? user.password : ''}`).toString('base64') : undefined;
  return {
    auth: tokenAuth(cluster.server, dispatcher, {
      ...(typeof user.token === 'string' ? { value: user.token } : {}),
      ...(typeof user.tokenFile === 'string' ? { file: resolve(base, user.tokenFile) } : {}),
      ...(basic !== undefined ? { basic } : {}),
    }),
  };
}
