import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type * as UndiciModule from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeApiServer } from '../testing/fake-apiserver.js';
import { createLogger } from '../observe/logger.js';
import { inClusterAuth, KubeApiError, KubeClient, kubeconfigAuth } from './kube-client.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir() {
  const dir = await mkdtemp(join(tmpdir(), 'weft-kc-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Records what authentication writes to a request. */
function target() {
  const headers: Record<string, string> = {};
  let dispatcher: unknown;
  return {
    headers,
    dispatcher: () => dispatcher,
    setHeaderParam: (k: string, v: string) => void (headers[k] = v),
    setDispatcher: (d: unknown) => void (dispatcher = d),
  };
}

/** Records the options the dispatcher was made with instead of opening connections. */
const FakeUndici = {
  Agent: class {
    constructor(readonly options: unknown) {}
  },
} as unknown as Pick<Undici, 'Agent'>;

type Undici = typeof UndiciModule;

const config = (user: string, cluster = 'server: https://192.0.2.1:6443') =>
  ['apiVersion: v1', 'kind: Config', `clusters: [{name: c, cluster: {${cluster}}}]`, `users: [{name: u, user: {${user}}}]`, 'contexts: [{name: x, context: {cluster: c, user: u}}]', 'current-context: x', ''].join('\n');

const logger = createLogger({ level: 'error', format: 'json' }, new Writable({ write: (_c, _e, d) => d() }));

describe('the lean kubeconfig reader', () => {
  it('reads a token, a CA and a client certificate, files relative to the kubeconfig', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'ca.pem'), 'CA');
    await writeFile(join(dir, 'kc'), config(`client-certificate-data: ${Buffer.from('CERT').toString('base64')}, client-key: key.pem, token: t0k`, 'server: https://192.0.2.1:6443/, certificate-authority: ca.pem, tls-server-name: api.example'));
    await writeFile(join(dir, 'key.pem'), 'KEY');
    const { auth, needs } = kubeconfigAuth(join(dir, 'kc'), FakeUndici);
    expect(needs).toBeUndefined();
    expect(auth?.getCurrentCluster()).toEqual({ server: 'https://192.0.2.1:6443/' });
    const t = target();
    await auth?.applySecurityAuthentication(t);
    expect(t.headers).toEqual({ Authorization: 'Bearer t0k' });
    expect((t.dispatcher() as { options: unknown }).options).toEqual({ connect: { ca: 'CA', cert: 'CERT', key: 'KEY', servername: 'api.example' } });
  });

  it('reads a token file, and basic auth', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), 'from-file\n');
    await writeFile(join(dir, 'kc'), config('tokenFile: token'));
    const t = target();
    await kubeconfigAuth(join(dir, 'kc'), FakeUndici).auth?.applySecurityAuthentication(t);
    expect(t.headers.Authorization).toBe('Bearer from-file');
    await writeFile(join(dir, 'kc'), config('username: ada, password: s3cret', 'server: https://192.0.2.1, insecure-skip-tls-verify: true'));
    const b = target();
    const basic = kubeconfigAuth(join(dir, 'kc'), FakeUndici).auth;
    await basic?.applySecurityAuthentication(b);
    expect(b.headers.Authorization).toBe(`Basic ${Buffer.from('ada:s3cret').toString('base64')}`);
    expect((b.dispatcher() as { options: unknown }).options).toEqual({ connect: { rejectUnauthorized: false } });
  });

  it('hands exec plugins, auth providers and proxies to the full client', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'kc'), config('exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}'));
    expect(kubeconfigAuth(join(dir, 'kc'), FakeUndici)).toEqual({ needs: 'exec' });
    await writeFile(join(dir, 'kc'), config('token: x', 'server: https://192.0.2.1, proxy-url: http://192.0.2.9:3128'));
    expect(kubeconfigAuth(join(dir, 'kc'), FakeUndici)).toEqual({ needs: 'proxy-url' });
  });

  it('says what is wrong with a broken kubeconfig, and where', async () => {
    const dir = await tempDir();
    const kc = join(dir, 'kc');
    await writeFile(kc, config('token: x').replace('current-context: x', 'current-context: nope'));
    expect(() => kubeconfigAuth(kc, FakeUndici)).toThrow(`kubeconfig ${kc}: context "nope" is not defined under contexts`);
    await writeFile(kc, 'apiVersion: v1\nkind: Config\n');
    expect(() => kubeconfigAuth(kc, FakeUndici)).toThrow(`kubeconfig ${kc}: no current-context`);
    await writeFile(kc, config('token: x', 'certificate-authority-data: Q0E='));
    expect(() => kubeconfigAuth(kc, FakeUndici)).toThrow(`kubeconfig ${kc}: cluster "c" has no server`);
    await writeFile(kc, 'clusters: [\n');
    expect(() => kubeconfigAuth(kc, FakeUndici)).toThrow(`kubeconfig ${kc}:`);
    expect(() => kubeconfigAuth(join(dir, 'missing'), FakeUndici)).toThrow(/ENOENT/);
  });

  it('in a pod: the service host, the service account token and CA', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), 'sa-token');
    await writeFile(join(dir, 'ca.crt'), 'CLUSTER-CA');
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    process.env.KUBERNETES_SERVICE_HOST = 'fd00:10:96::1';
    process.env.KUBERNETES_SERVICE_PORT = '443';
    try {
      const auth = inClusterAuth(FakeUndici, dir);
      expect(auth.getCurrentCluster()).toEqual({ server: 'https://[fd00:10:96::1]:443' });
      const t = target();
      await auth.applySecurityAuthentication(t);
      expect(t.headers.Authorization).toBe('Bearer sa-token');
      expect((t.dispatcher() as { options: unknown }).options).toEqual({ connect: { ca: 'CLUSTER-CA' } });
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

  it('loads the full client library only for a kubeconfig that needs it', async () => {
    const { client: c } = await client();
    expect(c.origin).not.toMatch(/full client/);
    const dir = await tempDir();
    await writeFile(join(dir, 'kc'), config('exec: {command: /bin/false, apiVersion: client.authentication.k8s.io/v1}'));
    const full = await KubeClient.load(join(dir, 'kc'), logger);
    expect(full.origin).toBe(`(full client) ${join(dir, 'kc')}`);
    expect(full.server).toBe('https://192.0.2.1:6443');
  }, 60_000); // importing the whole client library takes seconds on a busy machine
});
