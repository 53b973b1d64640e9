import { afterEach, describe, expect, it } from 'vitest';
import { definePlugin } from '../api/plugin.js';
import { z } from '../api/schema.js';
import { coreServices } from '../api/services.js';
import { startTestAgent, type TestAgent } from '../testing/index.js';

let agent: TestAgent | undefined;
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
});

function apiPlugin(gate: { open: boolean }) {
  return definePlugin({
    name: 'echo',
    apiVersion: '2',
    description: 'serves a few routes and a metric',
    config: z.strictObject({}),
    deps: { http: coreServices.http, metrics: coreServices.metrics },
    setup({ deps: { http, metrics } }) {
      const hits = metrics.counter({ name: 'weft_echo_hits_total', help: 'requests served', labelNames: ['route'] });
      http.route('GET', '/status', ({ url }) => {
        hits.inc({ route: 'status' });
        return { json: { ok: true, q: url.searchParams.get('q') } };
      });
      http.route('POST', '/echo', ({ body, path }) => ({ status: 201, json: { got: body.toString('utf8'), path } }));
      http.route('GET', '/boom', () => {
        throw new Error('handler exploded');
      });
      http.route('GET', '/', () => ({ body: '<h1>echo</h1>', contentType: 'text/html; charset=utf-8' }));
      return {
        reconcile: async () => {
          if (!gate.open) throw new Error('gate closed');
          await Promise.resolve();
        },
      };
    },
  });
}

describe('HTTP server', () => {
  it('serves /healthz always, and /readyz 503 until every plugin has reconciled, then 200', async () => {
    const gate = { open: false };
    agent = await startTestAgent({ plugins: [apiPlugin(gate)] });
    const t = agent;
    expect((await t.fetch('/healthz')).status).toBe(200);
    await t.waitForReconcile('echo');
    const notReady = await t.fetch('/readyz');
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ ready: false, checks: { discovery: { ok: true }, 'plugin:echo': { ok: false, detail: 'not reconciled yet: gate closed' } } });
    gate.open = true;
    await t.waitFor(() => t.status('echo').reconciled, { what: 'echo reconciled' });
    const ready = await t.fetch('/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true });
  });

  it('reports /readyz 503 while discovery is not synced', async () => {
    agent = await startTestAgent({ plugins: [apiPlugin({ open: true })] });
    await agent.waitForReconcile('echo');
    agent.cluster.setSynced(false);
    const res = await agent.fetch('/readyz');
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ checks: { discovery: { ok: false, detail: 'discovery has not synced' } } });
  });

  it('routes /api/<plugin>/ to the plugin, with 404, 405 and 500 answers', async () => {
    agent = await startTestAgent({ plugins: [apiPlugin({ open: true })] });
    const t = agent;
    expect(await (await t.fetch('/api/echo/status?q=1')).json()).toEqual({ ok: true, q: '1' });
    const posted = await t.fetch('/api/echo/echo', { method: 'POST', body: 'hello' });
    expect(posted.status).toBe(201);
    expect(await posted.json()).toEqual({ got: 'hello', path: '/echo' });
    const index = await t.fetch('/api/echo');
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await index.text()).toBe('<h1>echo</h1>');
    expect((await t.fetch('/api/echo/nothing')).status).toBe(404);
    expect((await t.fetch('/api/other/status')).status).toBe(404);
    expect((await t.fetch('/api/echo/status', { method: 'DELETE' })).status).toBe(405);
    const boom = await t.fetch('/api/echo/boom');
    expect(boom.status).toBe(500);
    expect(await boom.json()).toEqual({ error: 'handler exploded' });
    expect(await (await t.fetch('/api')).json()).toEqual({ routes: ['GET /api/echo/', 'GET /api/echo/boom', 'GET /api/echo/status', 'POST /api/echo/echo'] });
  });

  it('serves the core metrics and the plugin metrics labelled with the plugin', async () => {
    agent = await startTestAgent({ plugins: [apiPlugin({ open: true })] });
    await agent.waitForReconcile('echo');
    await agent.fetch('/api/echo/status');
    const res = await agent.fetch('/metrics');
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of ['weft_reconcile_duration_seconds', 'weft_reconcile_total', 'weft_plugin_up', 'weft_config_last_reload_successful', 'weft_build_info']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toMatch(/^weft_reconcile_total\{plugin="echo",result="success"\} [1-9]/m);
    expect(text).toMatch(/^weft_plugin_up\{plugin="echo"\} 1$/m);
    expect(text).toMatch(/^weft_config_last_reload_successful 1$/m);
    expect(text).toMatch(/^weft_build_info\{version="0\.1\.0",node="v24\.[0-9.]+"\} 1$/m);
    expect(text).toMatch(/^weft_echo_hits_total\{route="status",plugin="echo"\} 1$/m);
    // Every sample line parses as `name{labels} value`.
    for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+-]+|NaN|[+-]Inf$/);
    }
  });

  it('refuses a duplicate route and a metric that clashes with the core', async () => {
    const clash = (what: 'route' | 'metric') =>
      definePlugin({
        name: `clash-${what}`,
        apiVersion: '2',
        description: 'registers something twice',
        config: z.strictObject({}),
        deps: { http: coreServices.http, metrics: coreServices.metrics },
        setup({ deps: { http, metrics } }) {
          if (what === 'route') {
            http.route('GET', '/x', () => ({ json: 1 }));
            http.route('GET', '/x', () => ({ json: 2 }));
          } else {
            metrics.gauge({ name: 'weft_plugin_up', help: 'mine' });
          }
          return { reconcile: async () => undefined };
        },
      });
    await expect(startTestAgent({ plugins: [clash('route')], http: false })).rejects.toMatchObject({
      code: 'WEFT_REGISTRATION_CONFLICT',
      message: 'plugin "clash-route": route GET /api/clash-route/x is already registered',
    });
    await expect(startTestAgent({ plugins: [clash('metric')], http: false })).rejects.toMatchObject({
      code: 'WEFT_REGISTRATION_CONFLICT',
      message: 'plugin "clash-metric": metric weft_plugin_up is already registered by the core',
    });
  });

  it("drops a stopped plugin's routes and series", async () => {
    agent = await startTestAgent({ plugins: [apiPlugin({ open: true })] });
    await agent.waitForReconcile('echo');
    const base = agent.agent.currentConfig;
    await agent.agent.applyConfig({ ...base, plugins: [] });
    expect((await agent.fetch('/api/echo/status')).status).toBe(404);
    const text = await (await agent.fetch('/metrics')).text();
    expect(text).not.toContain('plugin="echo"');
  });
});

describe('HttpServer.listen', () => {
  it('moves to a new address, and stays on the old one when the new one is refused', async () => {
    const { HttpServer } = await import('./http.js');
    const { createLogger } = await import('./logger.js');
    const { Writable } = await import('node:stream');
    const bare = () =>
      new HttpServer({
        logger: createLogger({ level: 'silent', format: 'json' }, new Writable({ write: (_c, _e, done) => done() })),
        metrics: async () => ({ contentType: 'text/plain', body: '' }),
        readiness: () => ({ ready: true, checks: {} }),
      });
    const server = bare();
    const first = await server.listen('127.0.0.1', 0);
    const blocker = bare();
    const taken = await blocker.listen('127.0.0.1', 0);
    await expect(server.listen('127.0.0.1', taken.port)).rejects.toThrow(/EADDRINUSE/);
    expect((await fetch(`http://127.0.0.1:${first.port}/healthz`)).status).toBe(200);
    const moved = await server.listen('127.0.0.1', 0);
    expect((await fetch(`http://127.0.0.1:${moved.port}/healthz`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${first.port}/healthz`)).rejects.toThrow();
    await server.close();
    await blocker.close();
  });

  it('also serves on a Unix socket (0600), replacing a stale one and refusing to replace another file', async () => {
    const { HttpServer } = await import('./http.js');
    const { createLogger } = await import('./logger.js');
    const { Writable } = await import('node:stream');
    const { mkdtemp, rm, stat, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const join = (...parts: string[]) => path.join(...parts);
    const http = await import('node:http');
    const { spawnSync } = await import('node:child_process');
    const dir = await mkdtemp(join(tmpdir(), 'weft-sock-'));
    const server = new HttpServer({
      logger: createLogger({ level: 'silent', format: 'json' }, new Writable({ write: (_c, _e, done) => done() })),
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      readiness: () => ({ ready: true, checks: {} }),
    });
    const get = (socketPath: string, path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ socketPath, path }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      // A socket file left behind by a killed agent: a process binds it and dies by SIGKILL.
      const stale = join(dir, 'http.sock');
      const killed = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
      expect(killed.signal).toBe('SIGKILL');
      expect((await stat(stale)).isSocket()).toBe(true);
      await writeFile(join(dir, 'not-a-socket'), 'x');
      await expect(server.listenSocket(join(dir, 'not-a-socket'))).rejects.toThrow(/exists and is not a socket/);
      await server.listenSocket(stale);
      expect(await get(stale, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
      expect((await stat(stale)).mode & 0o777).toBe(0o600);
      await server.closeSocket();
      await expect(stat(stale)).rejects.toThrow(/ENOENT/);
    } finally {
      await server.closeSocket();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('HTTP limits', () => {
  const quiet = async () => {
    const { createLogger } = await import('./logger.js');
    const { Writable } = await import('node:stream');
    return createLogger({ level: 'silent', format: 'json' }, new Writable({ write: (_c, _e, done) => done() }));
  };

  it("answers 429 beyond a client's rate and counts it; the Unix socket is not limited", async () => {
    const { HttpServer } = await import('./http.js');
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { httpGet } = await import('./http-get.js');
    const join = (...parts: string[]) => path.join(...parts);
    const refused: string[] = [];
    let renders = 0;
    const server = new HttpServer({
      logger: await quiet(),
      metrics: async () => {
        renders++;
        await new Promise((r) => setTimeout(r, 50));
        return { contentType: 'text/plain', body: 'm 1\n' };
      },
      readiness: () => ({ ready: true, checks: {} }),
      refused: (reason) => refused.push(reason),
    });
    server.setLimits({ connections: 64, perClient: 1, burst: 5, total: 1000 });
    const dir = await mkdtemp(join(tmpdir(), 'weft-limits-'));
    try {
      const { port } = await server.listen('127.0.0.1', 0);
      const statuses = await Promise.all(Array.from({ length: 8 }, () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.status)));
      expect(statuses.filter((s) => s === 200)).toHaveLength(5);
      expect(statuses.filter((s) => s === 429)).toHaveLength(3);
      expect(refused).toEqual(['client-rate', 'client-rate', 'client-rate']);
      // The five served shared renderings: fewer renders than requests (they arrived together).
      expect(renders).toBeLessThan(5);
      const refusedReply = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect([refusedReply.status, refusedReply.headers.get('retry-after')]).toEqual([429, '1']);
      await server.listenSocket(join(dir, 'http.sock'));
      for (let i = 0; i < 20; i++) expect((await httpGet({ socket: join(dir, 'http.sock') }, '/healthz', 2000)).status).toBe(200);
    } finally {
      await server.close();
      await server.closeSocket();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('closes connections beyond the limit as they arrive, and counts them', async () => {
    const { HttpServer } = await import('./http.js');
    const net = await import('node:net');
    type Socket = InstanceType<typeof net.Socket>;
    const refused: string[] = [];
    const server = new HttpServer({ logger: await quiet(), metrics: async () => ({ contentType: 'text/plain', body: '' }), readiness: () => ({ ready: true, checks: {} }), refused: (r) => refused.push(r) });
    server.setLimits({ connections: 2, perClient: 100, burst: 100, total: 100 });
    const { port } = await server.listen('127.0.0.1', 0);
    const open = (): Promise<{ socket: Socket; closed: Promise<void> }> =>
      new Promise((resolve, reject) => {
        const socket = net.connect(port, '127.0.0.1', () => resolve({ socket, closed: new Promise((r) => socket.on('close', () => r())) }));
        socket.on('error', reject);
      });
    const held = [await open(), await open()];
    try {
      const third = await open();
      await third.closed; // the server closed it without a word
      await new Promise((r) => setTimeout(r, 20));
      expect(refused).toEqual(['connections']);
      held[0]?.socket.destroy();
      await held[0]?.closed;
      await new Promise((r) => setTimeout(r, 20));
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      for (const h of held) h.socket.destroy();
      await server.close();
    }
  });
});
