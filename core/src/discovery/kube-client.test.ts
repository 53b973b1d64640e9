import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../testing/fake-apiserver.js';
import { createLogger } from '../observe/logger.js';
import { authorizer, inClusterCredentials, KubeApiError, KubeClient, kubeconfigCredentials } from './kube-client.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir() {
  const dir = await mkdtemp(join(tmpdir(), 'weft-kc-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const config = (user: string, cluster = 'server: https://192.0.2.1:6443') =>
  ['apiVersion: v1', 'kind: Config', `clusters: [{name: c, cluster: {${cluster}}}]`, `users: [{name: u, user: {${user}}}]`, 'contexts: [{name: x, context: {cluster: c, user: u}}]', 'current-context: x', ''].join('\n');

const logger = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, d) => d() }));

describe('the lean kubeconfig reader', () => {
  it('reads a token, a CA and a client certificate, files relative to the kubeconfig', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'ca.pem'), 'CA');
    await writeFile(join(dir, 'kc'), config(`client-certificate-data: ${Buffer.from('CERT').toString('base64')}, client-key: key.pem, token: t0k`, 'server: https://192.0.2.1:6443/, certificate-authority: ca.pem, tls-server-name: api.example'));
    await writeFile(join(dir, 'key.pem'), 'KEY');
    const { credentials, needs } = kubeconfigCredentials(join(dir, 'kc'));
    expect(needs).toBeUndefined();
    expect(credentials?.server).toBe('https://192.0.2.1:6443/');
    expect(credentials?.tls).toEqual({ ca: 'CA', cert: 'CERT', key: 'KEY', servername: 'api.example' });
    expect(authorizer(credentials!)()).toBe('Bearer t0k');
  });

  it('reads a token file, and basic auth', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), 'from-file\n');
    await writeFile(join(dir, 'kc'), config('tokenFile: token'));
    const fromFile = kubeconfigCredentials(join(dir, 'kc')).credentials!;
    expect(authorizer(fromFile)()).toBe('Bearer from-file');
    await writeFile(join(dir, 'kc'), config('username: ada, password: s3cret', 'server: https://192.0.2.1, insecure-skip-tls-verify: true'));
    const basic = kubeconfigCredentials(join(dir, 'kc')).credentials!;
    expect(authorizer(basic)()).toBe(`Basic ${Buffer.from('ada:s3cret').toString('base64')}`);
    expect(basic.tls).toEqual({ rejectUnauthorized: false });
  });

  it('hands exec plugins, auth providers and proxies to the full client', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'kc'), config('exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}'));
    expect(kubeconfigCredentials(join(dir, 'kc'))).toEqual({ needs: 'exec' });
    await writeFile(join(dir, 'kc'), config('token: x', 'server: https://192.0.2.1, proxy-url: http://192.0.2.9:3128'));
    expect(kubeconfigCredentials(join(dir, 'kc'))).toEqual({ needs: 'proxy-url' });
  });

  it('says what is wrong with a broken kubeconfig, and where', async () => {
    const dir = await tempDir();
    const kc = join(dir, 'kc');
    await writeFile(kc, config('token: x').replace('current-context: x', 'current-context: nope'));
    expect(() => kubeconfigCredentials(kc)).toThrow(`kubeconfig ${kc}: context "nope" is not defined under contexts`);
    await writeFile(kc, 'apiVersion: v1\nkind: Config\n');
    expect(() => kubeconfigCredentials(kc)).toThrow(`kubeconfig ${kc}: no current-context`);
    await writeFile(kc, config('token: x', 'certificate-authority-data: Q0E='));
    expect(() => kubeconfigCredentials(kc)).toThrow(`kubeconfig ${kc}: cluster "c" has no server`);
    await writeFile(kc, 'clusters: [\n');
    expect(() => kubeconfigCredentials(kc)).toThrow(`kubeconfig ${kc}:`);
    expect(() => kubeconfigCredentials(join(dir, 'missing'))).toThrow(/ENOENT/);
  });

  it('in a pod: the service host, the service account token and CA', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), 'sa-token');
    await writeFile(join(dir, 'ca.crt'), 'CLUSTER-CA');
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = 'fd00:10:96::1';
    process.env.KUBERNETES_SERVICE_PORT = '443';
    try {
      const credentials = inClusterCredentials(dir);
      expect(credentials.server).toBe('https://[fd00:10:96::1]:443');
      expect(credentials.tls).toEqual({ ca: 'CLUSTER-CA' });
      expect(authorizer(credentials)()).toBe('Bearer sa-token');
    } finally {
      for (const [k, v] of [['KUBERNETES_SERVICE_HOST', saved.host], ['KUBERNETES_SERVICE_PORT', saved.port]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe('KubeClient against the fake API server', () => {
  async function client(options: Parameters<typeof startFakeApiServer>[0] = {}, token?: string) {
    const server = await startFakeApiServer(options);
    cleanups.push(() => server.close());
    const dir = await tempDir();
    const text = server.kubeconfig();
    await writeFile(join(dir, 'kc'), token === undefined ? text : text.replace(/token: [^}]+/, `token: ${token}`));
    return { server, client: await KubeClient.load(join(dir, 'kc'), logger) };
  }

  it('follows continue tokens: one snapshot across pages', async () => {
    const { server, client: c } = await client({ pageSize: 2 });
    for (const n of ['a', 'b', 'c', 'd', 'e']) server.put('nodes', { metadata: { name: n } });
    const list = await c.list('/api/v1/nodes');
    expect(list.items.map((o) => o.metadata?.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(server.requests.filter((r) => r.url.startsWith('/api/v1/nodes?'))).toHaveLength(3);
    expect(list.resourceVersion).toBe('105');
  });

  it('reports the API status of a refused request', async () => {
    const { client: c } = await client({}, 'wrong-token');
    const err = await c.list('/api/v1/nodes').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).statusCode).toBe(401);
    expect((err as Error).message).toBe('GET /api/v1/nodes?limit=500: HTTP 401: Unauthorized');
  });

  it('merge-patches an object', async () => {
    const { server, client: c } = await client();
    server.put('nodes', { metadata: { name: 'n1', annotations: { a: '1', b: '2' } } });
    const out = await c.mergePatch('/api/v1/nodes/n1', { metadata: { annotations: { a: null, c: '3' } } });
    expect(out.metadata?.annotations).toEqual({ b: '2', c: '3' });
  });

  it('loads the full client library only for a kubeconfig that needs it, and speaks through it', async () => {
    const { server, client: c } = await client();
    expect(c.origin).not.toMatch(/full client/);
    const token = /token: ([^}\s]+)/.exec(server.kubeconfig())?.[1] ?? '';
    const dir = await tempDir();
    // An exec credential plugin (a Node script, no shell) that hands out the server's token.
    await writeFile(join(dir, 'cred.mjs'), `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: ${JSON.stringify(token)} } }));`);
    const exec = `exec: {command: ${JSON.stringify(process.execPath)}, args: [${JSON.stringify(join(dir, 'cred.mjs'))}], apiVersion: client.authentication.k8s.io/v1, interactiveMode: Never}`;
    await writeFile(join(dir, 'kc'), config(exec, `server: ${server.url}, insecure-skip-tls-verify: true`));
    const full = await KubeClient.load(join(dir, 'kc'), logger);
    expect(full.origin).toBe(`(full client) ${join(dir, 'kc')}`);
    expect(full.server).toBe(server.url);
    server.put('nodes', { metadata: { name: 'a' } });
    const { items, resourceVersion } = await full.list('/api/v1/nodes');
    expect(items.map((o) => o.metadata?.name)).toEqual(['a']);
    const events: string[] = [];
    await full.watch('/api/v1/nodes', resourceVersion, 60, (type, o) => events.push(`${type} ${o.metadata?.name ?? ''}`), () => undefined);
    server.put('nodes', { metadata: { name: 'b' } });
    await until(() => events.length === 1);
    expect(events).toEqual(['ADDED b']);
    expect(await full.mergePatch('/api/v1/nodes/a', { metadata: { annotations: { x: '1' } } })).toMatchObject({ metadata: { annotations: { x: '1' } } });
  }, 60_000); // importing the whole client library takes seconds on a busy machine

  it('watches: events in order, a clean end, an abort', async () => {
    const { server, client: c } = await client();
    server.put('nodes', { metadata: { name: 'a' } });
    const { resourceVersion } = await c.list('/api/v1/nodes');
    const events: string[] = [];
    let ended: unknown = 'not yet';
    const controller = await c.watch('/api/v1/nodes', resourceVersion, 60, (type, o) => events.push(`${type} ${o.metadata?.name ?? ''}`), (err) => (ended = err));
    server.put('nodes', { metadata: { name: 'b' } });
    server.remove('nodes', 'a');
    await until(() => events.length === 2);
    expect(events).toEqual(['ADDED b', 'DELETED a']);
    expect(ended).toBe('not yet');
    controller.abort();
    await until(() => ended !== 'not yet');
    expect(ended).toBeInstanceOf(Error);

    ended = 'not yet';
    await c.watch('/api/v1/nodes', resourceVersion, 60, () => undefined, (err) => (ended = err));
    server.endWatches();
    await until(() => ended !== 'not yet');
    expect(ended).toBeNull();
  });

  it('ends a watch whose stream is not JSON lines, saying so', async () => {
    const http = createHttpServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n<html>oops</html>\n');
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => (http.closeAllConnections(), http.close(r))));
    const dir = await tempDir();
    await writeFile(join(dir, 'kc'), config('token: x', `server: http://127.0.0.1:${String((http.address() as AddressInfo).port)}`));
    const c = await KubeClient.load(join(dir, 'kc'), logger);
    const events: string[] = [];
    let ended: unknown = 'not yet';
    await c.watch('/api/v1/nodes', '1', 60, (type) => events.push(type), (err) => (ended = err));
    await until(() => ended !== 'not yet');
    expect(events).toEqual(['ADDED']);
    expect((ended as Error).message).toBe('watch /api/v1/nodes: a line that is not JSON: <html>oops</html>');
  });

  it('speaks TLS with the kubeconfig\'s CA, server name and client certificate', async () => {
    const fixture = (f: string) => readFile(join(import.meta.dirname, '__fixtures__', 'tls', f), 'utf8');
    const [ca, cert, key, clientCert, clientKey] = (await Promise.all(['ca.crt', 'server.crt', 'server.key', 'client.crt', 'client.key'].map(fixture))) as [string, string, string, string, string];
    const seen: string[] = [];
    const https = createHttpsServer({ ca, cert, key, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      seen.push(`${req.method ?? ''} ${req.url ?? ''} ${String((req.socket as TLSSocket).getPeerCertificate().subject.CN)}`);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ items: [{ metadata: { name: 'n1' } }], metadata: { resourceVersion: '7' } }));
    });
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => (https.closeAllConnections(), https.close(r))));
    const server = `https://127.0.0.1:${String((https.address() as AddressInfo).port)}`;
    const dir = await tempDir();
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    const user = `client-certificate-data: ${b64(clientCert)}, client-key-data: ${b64(clientKey)}`;
    await writeFile(join(dir, 'kc'), config(user, `server: ${server}, certificate-authority-data: ${b64(ca)}, tls-server-name: api.weft.test`));
    const c = await KubeClient.load(join(dir, 'kc'), logger);
    expect(await c.list('/api/v1/nodes')).toEqual({ items: [{ metadata: { name: 'n1' } }], resourceVersion: '7' });
    expect(seen).toEqual(['GET /api/v1/nodes?limit=500 system:node:n1']);

    // The server's name is api.weft.test, not 127.0.0.1; and without the CA it is a stranger.
    await writeFile(join(dir, 'kc'), config(user, `server: ${server}, certificate-authority-data: ${b64(ca)}`));
    const wrongName = await (await KubeClient.load(join(dir, 'kc'), logger)).list('/api/v1/nodes').catch((e: unknown) => e);
    expect(String(wrongName)).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list/);
    await writeFile(join(dir, 'kc'), config(user, `server: ${server}, tls-server-name: api.weft.test`));
    const noCa = await (await KubeClient.load(join(dir, 'kc'), logger)).list('/api/v1/nodes').catch((e: unknown) => e);
    expect(String(noCa)).toMatch(/unable to verify the first certificate|self-signed certificate in certificate chain|unable to get local issuer/);
    expect(seen).toHaveLength(1);
  });
});

/** Waits (bounded) until `check` holds. */
async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
