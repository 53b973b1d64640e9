import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab } from '../core/src/lab/index.js';
import { LAB_API } from '../core/src/lab/topology.js';
import { netnsSkipReason, programsSkipReason, skipNote } from './support/capabilities.js';
import { fakeConfigMap } from './support/configmap.js';
import { labNames } from './support/labs.js';
import { kustomizeBuild } from './support/manifests.js';
import './support/builtins.js';
import { until } from './support/until.js';

// The container image, built as `npm run image -- --offline` builds it on a machine without a registry (a Debian
// base made by mmdebstrap, then the Containerfile through buildah) and run with podman the way the DaemonSet runs it:
// read-only root, NET_ADMIN only, the config a directory, the host's net sysctls mounted writable.
const repo = fileURLToPath(new URL('../', import.meta.url));
const skip = programsSkipReason(['image'], 'the image test', { root: true }) ?? (await netnsSkipReason()) ?? (existsSync(join(repo, 'dist/weft/weft.blob')) ? undefined : 'dist/weft/weft.blob is missing: npm run build makes it');
const { version } = JSON.parse(readFileSync(join(repo, 'core/package.json'), 'utf8')) as { version: string };
const tag = `localhost/weft-test:${String(process.pid)}`;
const base = 'localhost/weft-base:bookworm';
const container = `weft-image-test-${String(process.pid)}`;
const pod = `weft-pod-test-${String(process.pid)}`;
const labName = labNames();

let dir = '';
let hadBase = false;
let size = '';
// This machine's podman: runc (crun refuses its hybrid cgroups), cgroupfs, and no default ulimits to set
// (the sandbox may not raise RLIMIT_NOFILE). STACK-NOTES, "Containers on these machines".
const podman = (args: string[], options: { reject?: boolean; timeout?: number } = {}) =>
  execa('podman', ['--runtime', 'runc', '--cgroup-manager=cgroupfs', ...args], { env: { CONTAINERS_CONF: join(dir, 'containers.conf') }, reject: options.reject ?? true, timeout: options.timeout ?? 60_000 });

beforeAll(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'weft-image-'));
  await writeFile(join(dir, 'containers.conf'), '[containers]\ndefault_ulimits = []\n');
  hadBase = (await execa('buildah', ['inspect', '--type', 'image', base], { reject: false })).exitCode === 0;
  const built = await execa(process.execPath, [join(repo, 'tools/image.mjs'), '--offline', '--tool', 'buildah', '--tag', tag], { reject: false, all: true, timeout: 900_000 });
  if (built.exitCode !== 0) throw new Error(`npm run image -- --offline failed:\n${built.all.slice(-4000)}`);
  size = /image: \S+, (.+)$/m.exec(built.stdout)?.[1] ?? '?';
  console.log(`image ${tag}: ${size}`);
}, 960_000);

afterAll(async () => {
  if (skip) return;
  await podman(['rm', '--force', container], { reject: false });
  await podman(['rm', '--force', pod], { reject: false });
  await execa('buildah', ['rmi', '--force', tag], { reject: false });
  if (!hadBase) await execa('buildah', ['rmi', '--force', base], { reject: false });
  await rm(dir, { recursive: true, force: true });
}, 120_000);

describe.skipIf(skip)(`the image, built offline${skipNote(skip)}`, () => {
  it('says its version: the weft command on PATH, and the agent entrypoint (the startup snapshot)', async () => {
    const cli = await podman(['run', '--rm', '--network', 'none', '--entrypoint', 'weft', tag, '--version']);
    expect(cli.stdout).toBe(version);
    const entrypoint = await podman(['run', '--rm', '--network', 'none', tag, '--', '--version']);
    expect(entrypoint.stdout).toBe(version);
  });

  it('weft doctor runs in it, finds every program the kernel driver runs and probes the kernel without a namespace of its own', async () => {
    const doctor = await podman(['run', '--rm', '--network', 'none', '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', '--entrypoint', 'weft', tag, 'doctor'], { reject: false });
    for (const tool of ['ip', 'bridge', 'wg', 'wireguard-go', 'nft', 'sysctl', 'nsenter', 'setpriv']) expect(doctor.stdout).toMatch(new RegExp(`^ok +tool ${tool} +/`, 'm'));
    // No namespace can be made without CAP_SYS_ADMIN (the DaemonSet's case): the kernel's features are probed in the
    // container's own namespace instead, and the report says so.
    expect(doctor.stdout).toMatch(/^MISSING +network namespaces .*probing in this namespace instead/m);
    for (const kind of ['bridge', 'veth', 'vxlan']) expect(doctor.stdout).toMatch(new RegExp(`^ok +link ${kind} +supported`, 'm'));
    expect(doctor.stdout).toMatch(/^ok +nftables +nft works/m);
  });

  it('starts the agent as the DaemonSet does: WireGuard up (wireguard-go under tini, no zombie), sysctls through the mounted /proc/sys/net, a clean stop', async () => {
    const config = join(dir, 'config');
    await mkdir(config);
    await mkdir(join(dir, 'state'));
    // The config as a directory of files, as the DaemonSet mounts its ConfigMap; no API server in here: static nodes.
    await writeFile(join(config, 'weft.yaml'), ['node: {name: image-1}', 'http: {listen: "127.0.0.1:9471"}', 'log: {level: info, format: json}', 'kernel: {procSys: /host/proc/sys}', ''].join('\n'));
    await writeFile(join(config, 'wireguard.yaml'), 'plugins:\n  wireguard: {granularity: full}\n');
    // A network namespace of the container's own (--network none): the sysctls written are its, not this machine's.
    await podman([
      'run', '--detach', '--name', container, '--network', 'none', '--read-only', '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN',
      '--device', '/dev/net/tun', '--tmpfs', '/run/wireguard', '--env', 'NODE_NAME=image-1',
      '--volume', `${config}:/etc/weft:ro`, '--volume', `${join(dir, 'state')}:/var/lib/weft`, '--volume', '/proc/sys/net:/host/proc/sys/net', tag,
    ]);
    let logs = '';
    for (let i = 0; i < 100 && !/"msg":"settled after the start"/.test(logs); i++) {
      await new Promise((r) => setTimeout(r, 200));
      logs = (await podman(['logs', container])).stdout;
    }
    expect(logs).toMatch(/"msg":"weft started"/);
    expect((await podman(['exec', container, 'ip', '-br', 'link', 'show', 'weft-wg0'])).stdout).toMatch(/^weft-wg0 /);
    expect((await podman(['exec', container, 'cat', '/proc/sys/net/ipv4/ip_forward'])).stdout).toBe('1');
    const ps = (await podman(['exec', container, 'ps', '-eo', 'pid=,ppid=,stat=,comm='])).stdout.split('\n').map((l) => l.trim().split(/\s+/));
    expect(ps.find((p) => p[3] === 'tini')?.[0]).toBe('1');
    expect(ps.find((p) => p[3] === 'wireguard-go')?.[1]).toBe('1');
    expect(ps.filter((p) => p[2]?.startsWith('Z'))).toEqual([]);
    await podman(['stop', '--time', '20', container]);
    expect((await podman(['inspect', container, '--format', '{{.State.ExitCode}}'])).stdout).toBe('0');
    expect((await podman(['logs', container])).stdout).toMatch(/"msg":"weft stopped"/);
  }, 120_000);

  it('the DaemonSet as written (command, args, env, volumes, privileges of the rendered overlay) runs in a lab node against the API server, in-cluster, and becomes ready', async () => {
    const objects = await kustomizeBuild(join(repo, 'manifests/overlays/wireguard-mesh'));
    const daemonSet = objects.find((o) => o.kind === 'DaemonSet') as unknown as { spec: { template: { spec: PodSpec } } };
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'weft-config');
    const spec = daemonSet.spec.template.spec;
    const lab = await Lab.up({ name: labName('pod'), nodes: 3, discovery: 'kubernetes', timeoutMs: 60_000 });
    let proxy: ReturnType<typeof spawn> | undefined;
    let cm: Awaited<ReturnType<typeof fakeConfigMap>> | undefined;
    try {
      expect((await lab.waitConverged(30_000)).converged).toBe(true);
      // n3's agent makes way for the pod (its node, its Node object and namespaces stay).
      await lab.killAgent('n3', 'SIGTERM');
      const n3 = lab.topology.nodes.find((n) => n.name === 'n3');
      if (!n3 || !lab.topology.apiNetns) throw new Error('the lab has no n3 or no API namespace');
      await until('n3 agent gone', async () => (await lab.status()).nodes.find((n) => n.name === 'n3')?.agent !== 'running', 10_000);
      // The lab's wireguard-go outlives its agent (it daemonises); a pod's dies with its pod, its device with it.
      await lab.exec('n3', ['ip', 'link', 'del', 'weft-wg0']);

      // What a real cluster gives a pod and the lab's API server lacks: TLS and a service account. The API server's
      // certificate (its address in the SAN) is the service account's ca.crt; a TLS front in the API's namespace.
      const tls = join(dir, 'tls');
      await mkdir(tls);
      await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=weft-lab-api', '-addext', `subjectAltName=IP:${LAB_API.address}`, '-keyout', join(tls, 'key.pem'), '-out', join(tls, 'cert.pem')]);
      const tlsPort = LAB_API.port + 1;
      proxy = spawn('nsenter', [`--net=/run/netns/${lab.topology.apiNetns}`, '--', process.execPath, join(repo, 'test/support/tls-proxy.mjs'), LAB_API.address, String(tlsPort), LAB_API.address, String(LAB_API.port), join(tls, 'key.pem'), join(tls, 'cert.pem')], { stdio: 'ignore' });
      const serviceAccount = join(dir, 'serviceaccount');
      await mkdir(serviceAccount);
      await writeFile(join(serviceAccount, 'token'), (await readFile(join(lab.dir, 'api-token'), 'utf8')).trim());
      await writeFile(join(serviceAccount, 'ca.crt'), await readFile(join(tls, 'cert.pem')));
      await writeFile(join(serviceAccount, 'namespace'), 'kube-system');
      // The ConfigMap as the kubelet mounts it (..data and a link per key).
      cm = await fakeConfigMap(configMap?.data ?? {});
      const podState = join(dir, 'pod-state');
      await mkdir(podState);

      const args = podmanRun(spec, {
        name: pod,
        image: tag,
        netns: `/run/netns/${n3.netns}`,
        nodeName: 'n3',
        configMaps: { 'weft-config': cm.dir },
        hostPaths: { '/var/lib/weft': podState, '/proc/sys/net': '/proc/sys/net', '/dev/net/tun': '/dev/net/tun' },
        // What the kubelet adds to every pod: the API server's address and the service account's token and CA.
        env: { KUBERNETES_SERVICE_HOST: LAB_API.address, KUBERNETES_SERVICE_PORT: String(tlsPort) },
        mounts: [`${serviceAccount}:/var/run/secrets/kubernetes.io/serviceaccount:ro`],
      });
      await podman(args);
      await until('the pod is ready (/readyz on the node, as the readiness probe asks)', async () => (await lab.exec('n3', ['curl', '-sf', '-o', '/dev/null', 'http://127.0.0.1:9471/readyz'])).exitCode === 0, 60_000).catch(async (err: unknown) => {
        const state = await podman(['inspect', pod, '--format', '{{.State.Status}} {{.State.ExitCode}}'], { reject: false });
        const logs = await podman(['logs', pod], { reject: false });
        const readyz = await lab.exec('n3', ['curl', '-s', 'http://127.0.0.1:9471/readyz']);
        throw new Error(`${String(err)}\npod: ${state.stdout}\n/readyz: ${readyz.stdout}\nlog:\n${logs.stdout.slice(-3000)}\n${logs.stderr.slice(-2000)}`);
      });
      const logs = (await podman(['logs', pod])).stdout;
      expect(logs).toMatch(/"msg":"weft started"/);
      // In-cluster: it published its new key through the API, and the lab's agents took it as their peer.
      const key = (await podman(['exec', pod, 'wg', 'show', 'weft-wg0', 'public-key'])).stdout.trim();
      expect(key).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      await until("n1 peers with the pod's key", async () => (await lab.exec('n1', ['wg', 'show', 'weft-wg0', 'peers'])).stdout.split('\n').includes(key), 30_000);
      await podman(['stop', '--time', String(spec.terminationGracePeriodSeconds ?? 30), pod]);
      expect((await podman(['inspect', pod, '--format', '{{.State.ExitCode}}'])).stdout).toBe('0');
    } finally {
      proxy?.kill('SIGTERM');
      await podman(['rm', '--force', pod], { reject: false });
      await cm?.remove();
      await lab.down();
    }
  }, 240_000);
});

interface PodSpec {
  hostNetwork?: boolean;
  terminationGracePeriodSeconds?: number;
  containers: {
    command?: string[];
    args?: string[];
    env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
    volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
    securityContext?: { runAsUser?: number; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; privileged?: boolean; capabilities?: { add?: string[]; drop?: string[] } };
  }[];
  volumes?: { name: string; hostPath?: { path: string; type?: string }; configMap?: { name: string }; emptyDir?: { medium?: string; sizeLimit?: string } }[];
}

/**
 * `podman run` arguments that start a pod's (only) container as the kubelet would: the same command, args, env
 * (`spec.nodeName` from the Downward API), volumes (hostPath, ConfigMap, emptyDir), network (the node's, for
 * hostNetwork) and privileges. What the emulation does not know fails here, so that a new field in the manifest is
 * looked at. Resource limits are not applied (this machine's cgroups do not take them from podman).
 */
function podmanRun(
  spec: PodSpec,
  o: { name: string; image: string; netns: string; nodeName: string; configMaps: Record<string, string>; hostPaths: Record<string, string>; env: Record<string, string>; mounts: string[] },
): string[] {
  const [c, ...more] = spec.containers;
  if (!c || more.length > 0) throw new Error('the emulation runs pods of one container');
  const sc = c.securityContext ?? {};
  if (sc.privileged) throw new Error('a privileged container: the manifest promised none');
  const args = ['run', '--detach', '--name', o.name];
  args.push('--network', spec.hostNetwork ? `ns:${o.netns}` : 'none');
  if (sc.runAsUser !== undefined) args.push('--user', String(sc.runAsUser));
  if (sc.readOnlyRootFilesystem) args.push('--read-only');
  if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  for (const cap of sc.capabilities?.drop ?? []) args.push('--cap-drop', cap);
  for (const cap of sc.capabilities?.add ?? []) args.push('--cap-add', cap);
  for (const e of c.env ?? []) {
    if (e.value !== undefined) args.push('--env', `${e.name}=${e.value}`);
    else if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') args.push('--env', `${e.name}=${o.nodeName}`);
    else throw new Error(`env ${e.name}: the emulation knows value and fieldRef spec.nodeName`);
  }
  for (const [k, v] of Object.entries(o.env)) args.push('--env', `${k}=${v}`);
  for (const m of c.volumeMounts ?? []) {
    const v = spec.volumes?.find((x) => x.name === m.name);
    if (!v) throw new Error(`volumeMount ${m.name}: no such volume`);
    const ro = m.readOnly ? ':ro' : '';
    if (v.hostPath) {
      const source = o.hostPaths[v.hostPath.path];
      if (source === undefined) throw new Error(`hostPath ${v.hostPath.path}: say where the emulation takes it from`);
      if (v.hostPath.type === 'CharDevice') args.push('--device', `${source}:${m.mountPath}`);
      else args.push('--volume', `${source}:${m.mountPath}${ro}`);
    } else if (v.configMap) {
      const source = o.configMaps[v.configMap.name];
      if (source === undefined) throw new Error(`configMap ${v.configMap.name}: not rendered`);
      args.push('--volume', `${source}:${m.mountPath}:ro`);
    } else if (v.emptyDir) {
      const size = v.emptyDir.sizeLimit?.replace(/Mi$/, 'm').replace(/Gi$/, 'g');
      args.push('--tmpfs', `${m.mountPath}${size ? `:size=${size}` : ''}`);
    } else throw new Error(`volume ${v.name}: the emulation knows hostPath, configMap and emptyDir`);
  }
  for (const m of o.mounts) args.push('--volume', m);
  const [entrypoint, ...rest] = c.command ?? [];
  if (entrypoint === undefined) throw new Error('the container names no command');
  args.push('--entrypoint', JSON.stringify([entrypoint, ...rest]), o.image, ...(c.args ?? []));
  return args;
}
