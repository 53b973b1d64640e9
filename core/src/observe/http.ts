import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { chmod, lstat, unlink } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { describeError, WeftError } from '../api/errors.js';
import { nodeHttp } from './node-http.js';
import type { HttpHandler, HttpReply, HttpRequest, PluginHttp } from '../api/services.js';
import { RateLimiter, type RateLimits } from './rate-limit.js';

const MAX_BODY = 1 << 20;

function bind(server: Server, options: { host: string; port: number } | { path: string }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function shut(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE']);

/** What `/readyz` reports. */
export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, { readonly ok: boolean; readonly detail?: string }>>;
}

export interface HttpServerDeps {
  readonly logger: Logger;
  readonly metrics: () => Promise<{ contentType: string; body: string }>;
  readonly readiness: () => Readiness;
  /** What `/claims` reports: the address plan and what the core refused of the nodes' claims. */
  readonly claims?: () => unknown;
  /** Told of every connection or request the limits refused. */
  readonly refused?: (reason: HttpRefusal) => void;
}

/** Why the server turned a client away: too many connections, the client's request rate, or everyone's. */
export type HttpRefusal = 'connections' | 'client-rate' | 'total-rate';

/** What the TCP listener serves at most; the Unix socket (mode 0600, root only) is not limited. */
export interface HttpLimits extends RateLimits {
  /** Open TCP connections at once. */
  readonly connections: number;
}

/** The limits when none are given (the config's defaults). */
export const DEFAULT_HTTP_LIMITS: HttpLimits = { connections: 64, perClient: 20, burst: 100, total: 100 };

interface Route {
  readonly plugin: string;
  readonly handler: HttpHandler;
}

/**
 * The agent's HTTP server: `/metrics`, `/healthz`, `/readyz`, and the routes plugins register under
 * `/api/<plugin>/`. The route table lives apart from the socket, so routes survive a re-listen on a new address.
 */
export class HttpServer {
  private server: Server | undefined;
  private socketServer: { server: Server; path: string } | undefined;
  private readonly routes = new Map<string, Route>();
  private limits: HttpLimits = DEFAULT_HTTP_LIMITS;
  private rate = new RateLimiter(DEFAULT_HTTP_LIMITS);
  /** The `/metrics` rendering in progress: requests that arrive meanwhile share it. */
  private rendering: Promise<{ contentType: string; body: string }> | undefined;

  constructor(private readonly deps: HttpServerDeps) {}

  /** Sets the limits of the TCP listener; takes effect at once (the request-rate history starts again). */
  setLimits(limits: HttpLimits): void {
    if (JSON.stringify(limits) === JSON.stringify(this.limits)) return;
    this.limits = limits;
    this.rate = new RateLimiter(limits);
    if (this.server) this.server.maxConnections = limits.connections;
  }

  /** The route registrar a plugin gets; `clear()` removes all of that plugin's routes. */
  forPlugin(plugin: string): PluginHttp & { clear(): void } {
    const basePath = `/api/${plugin}`;
    return {
      basePath,
      route: (method, path, handler) => {
        if (!METHODS.has(method)) throw new WeftError('WEFT_REGISTRATION_CONFLICT', `plugin "${plugin}": unsupported HTTP method ${method}`);
        if (!path.startsWith('/') || path.includes('?') || path.includes('#')) {
          throw new WeftError('WEFT_REGISTRATION_CONFLICT', `plugin "${plugin}": route path must start with / and hold no query, got ${JSON.stringify(path)}`);
        }
        const key = `${method} ${basePath}${path === '/' ? '/' : path}`;
        if (this.routes.has(key)) throw new WeftError('WEFT_REGISTRATION_CONFLICT', `plugin "${plugin}": route ${key} is already registered`);
        this.routes.set(key, { plugin, handler });
      },
      clear: () => {
        for (const [key, route] of this.routes) if (route.plugin === plugin) this.routes.delete(key);
      },
    };
  }

  /**
   * Starts listening, or moves to a new address: the new socket is bound before the old one closes, so a refused
   * address (in use) leaves the server where it was.
   */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = this.create(true);
    await bind(server, { host, port });
    await this.close();
    this.server = server;
    const address = server.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  /**
   * Also serves the same routes on a Unix socket (mode 0600: root only), or stops doing so (`null`). A stale socket
   * file at the path (left by an agent that was killed) is replaced; any other file there is an error.
   */
  async listenSocket(path: string | null): Promise<void> {
    if (this.socketServer?.path === path) return;
    await this.closeSocket();
    if (path === null) return;
    const existing = await lstat(path).catch(() => undefined);
    if (existing && !existing.isSocket()) throw new Error(`${path} exists and is not a socket`);
    if (existing) await unlink(path);
    const server = this.create(false);
    await bind(server, { path });
    await chmod(path, 0o600);
    this.socketServer = { server, path };
  }

  /** The bound address, when listening. */
  address(): { host: string; port: number } | undefined {
    const a = this.server?.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : undefined;
  }

  /** Stops listening on the TCP address; idempotent. */
  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await shut(server);
  }

  /** Stops listening on the Unix socket and removes it; idempotent. */
  async closeSocket(): Promise<void> {
    const s = this.socketServer;
    this.socketServer = undefined;
    if (s) await shut(s.server); // the server unlinks its socket file
  }

  private create(limited: boolean): Server {
    const server = nodeHttp().createServer((req, res) => {
      if (limited) {
        const verdict = this.rate.admit(req.socket.remoteAddress ?? '?');
        if (verdict !== 'ok') {
          this.deps.refused?.(verdict === 'client' ? 'client-rate' : 'total-rate');
          // Cheap on purpose: no URL parsing, no body read; the connection may be kept for the next try.
          const body = verdict === 'client' ? '{"error":"too many requests from this address"}\n' : '{"error":"too many requests"}\n';
          res.writeHead(429, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length, 'Retry-After': '1' }).end(body);
          return;
        }
      }
      this.handle(req, res).catch((err: unknown) => {
        this.deps.logger.error({ err: describeError(err) }, 'http handler failed');
        if (!res.headersSent) send(res, 500, { json: { error: 'internal error' } });
        else res.destroy();
      });
    });
    if (limited) {
      server.maxConnections = this.limits.connections;
      server.on('drop', () => this.deps.refused?.('connections'));
    }
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 5_000;
    server.requestTimeout = 30_000;
    return server;
  }

  /** One `/metrics` rendering for every request that arrives while it runs. */
  private metrics(): Promise<{ contentType: string; body: string }> {
    this.rendering ??= this.deps.metrics().finally(() => {
      this.rendering = undefined;
    });
    return this.rendering;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', `http://${req.headers.host ?? 'localhost'}`);
    const method = req.method ?? 'GET';
    const path = url.pathname;

    if (path === '/healthz') return send(res, 200, { body: 'ok\n', contentType: 'text/plain' });
    if (path === '/readyz') {
      const r = this.deps.readiness();
      return send(res, r.ready ? 200 : 503, { json: r });
    }
    if (path === '/claims' && this.deps.claims) return send(res, 200, { json: this.deps.claims() });
    if (path === '/metrics') {
      const { contentType, body } = await this.metrics();
      return send(res, 200, { body, contentType });
    }
    if (path === '/api' || path === '/api/') {
      const list = [...this.routes.keys()].sort();
      return send(res, 200, { json: { routes: list } });
    }

    const lookup = method === 'HEAD' ? 'GET' : method;
    const normalized = /^\/api\/[^/]+$/.test(path) ? `${path}/` : path;
    const route = this.routes.get(`${lookup} ${normalized}`);
    if (!route) {
      const other = [...METHODS].some((m) => this.routes.has(`${m} ${normalized}`));
      return send(res, other ? 405 : 404, { json: { error: other ? `method ${method} not allowed` : `no route ${path}` } });
    }

    const body = await readBody(req);
    if (body === undefined) return send(res, 413, { json: { error: `request body over ${MAX_BODY} bytes` } });
    const controller = new AbortController();
    res.on('close', () => controller.abort());
    const prefix = `/api/${route.plugin}`;
    const request: HttpRequest = {
      method,
      url,
      path: normalized.slice(prefix.length) || '/',
      headers: req.headers,
      body,
      signal: controller.signal,
    };
    let reply: HttpReply;
    try {
      reply = await route.handler(request);
    } catch (err) {
      this.deps.logger.warn({ plugin: route.plugin, route: `${method} ${path}`, err: describeError(err) }, 'plugin route failed');
      return send(res, 500, { json: { error: describeError(err) } });
    }
    send(res, reply.status ?? 200, reply, method === 'HEAD');
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, status: number, reply: HttpReply, headOnly = false): void {
  let body: string | Buffer;
  let contentType = reply.contentType;
  if (reply.json !== undefined) {
    body = `${JSON.stringify(reply.json, null, 2)}\n`;
    contentType ??= 'application/json; charset=utf-8';
  } else {
    body = reply.body ?? '';
    contentType ??= 'text/plain; charset=utf-8';
  }
  res.writeHead(status, { ...reply.headers, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(headOnly ? undefined : body);
}
