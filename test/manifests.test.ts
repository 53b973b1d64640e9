import './support/builtins.js';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../core/src/config/load.js';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '../core/src/lab/lab.js';
import { kubeObjectProblems } from './support/kube-schema.js';
import { type KubeObject, kustomizeBuild } from './support/manifests.js';

// The manifests as `kubectl apply -k manifests/overlays/<name>` applies them: each overlay rendered by kustomize, every
// object checked against the Kubernetes schemas offline, the ConfigMap's config checked as `weft config validate`
// checks it, and the DaemonSet's command held to what the lab and the benchmarks run.
const repo = fileURLToPath(new URL('../', import.meta.url));
/** Where the image (Containerfile) puts what the DaemonSet's command names. */
const IMAGE = { tini: '/usr/bin/tini', node: '/usr/local/bin/node', snapshot: '/usr/lib/weft/weft.blob' };

const overlays = (await readdir(join(repo, 'manifests/overlays'))).sort();
/** What each overlay must install: the plugins its config enables. */
const EXPECTED_PLUGINS: Record<string, string[]> = {
  'wireguard-mesh': ['wireguard', 'keepalive'],
  'wireguard-mesh-monitored': ['wireguard', 'keepalive'],
  vxlan: ['vxlan', 'keepalive'],
  'service-tunnels': ['wireguard', 'keepalive', 'gre-tunnel'],
  'service-tunnels-mpls': ['wireguard', 'keepalive', 'gre-tunnel', 'mpls-lwtunnel'],
};
/** The capabilities an overlay's agent has: NET_ADMIN, and what its plugins need beyond (entering pods' namespaces). */
const EXPECTED_CAPABILITIES: Record<string, string[]> = { 'service-tunnels': ['NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE'], 'service-tunnels-mpls': ['NET_ADMIN', 'SYS_ADMIN', 'SYS_PTRACE'] };

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('the schema check itself', () => {
  it('refuses a wrong type, a missing required field and an unknown field, naming the object and the path', async () => {
    const daemonSet = (container: Record<string, unknown>, spec: Record<string, unknown> = {}) => ({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'x' },
      spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i', ...container }] } }, ...spec },
    });
    expect(await kubeObjectProblems(daemonSet({}))).toEqual([]);
    expect(await kubeObjectProblems(daemonSet({ ports: [{ containerPort: 'http' }] }))).toEqual([expect.stringMatching(/^DaemonSet\/x: .*containerPort must be integer/)]);
    expect(await kubeObjectProblems(daemonSet({ volumeMount: [{ name: 'v', mountPath: '/v' }] }))).toEqual(['DaemonSet/x: unknown field spec.template.spec.containers[0].volumeMount']);
    expect(await kubeObjectProblems(daemonSet({}, { selector: undefined }))).toEqual([expect.stringMatching(/^DaemonSet\/x: .*spec must have required property selector/)]);
    expect(await kubeObjectProblems({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } })).toEqual([expect.stringMatching(/^Widget\/w: no schema for example.com\/v1 Widget/)]);
  });
});

describe.each(overlays)('manifests/overlays/%s', (overlay) => {
  let objects: KubeObject[] = [];

  it('renders, and every object passes the Kubernetes schemas with no unknown field', async () => {
    objects = await kustomizeBuild(join(repo, 'manifests/overlays', overlay));
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(expect.arrayContaining(['ServiceAccount/weft', 'ClusterRole/weft', 'ClusterRoleBinding/weft', 'ConfigMap/weft-config', 'DaemonSet/weft']));
    const problems = (await Promise.all(objects.map((o) => kubeObjectProblems(o)))).flat();
    expect(problems).toEqual([]);
    for (const o of objects) if (!['ClusterRole', 'ClusterRoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'].includes(o.kind)) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('kube-system');
  });

  it("its ConfigMap is a valid config (as weft config validate reads the mounted directory) enabling the overlay's plugins", async () => {
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'weft-config');
    const dir = await mkdtemp(join(tmpdir(), 'weft-manifest-config-'));
    dirs.push(dir);
    for (const [key, text] of Object.entries(configMap?.data ?? {})) await writeFile(join(dir, key), text);
    const config = await loadConfigFile(dir, { env: { NODE_NAME: 'node-1' } });
    expect(config.core.discovery.source).toBe('kubernetes');
    expect(config.plugins.map((p) => p.name).sort()).toEqual([...(EXPECTED_PLUGINS[overlay] ?? ['(say what this overlay installs in EXPECTED_PLUGINS)'])].sort());
  });

  it('the DaemonSet runs the agent as the lab and the benchmarks measure it, with its config mounted as a directory', () => {
    const ds = objects.find((o) => o.kind === 'DaemonSet') as unknown as {
      spec: {
        updateStrategy: { rollingUpdate: { maxUnavailable: number; maxSurge: number } };
        template: { spec: { hostNetwork: boolean; priorityClassName: string; tolerations: unknown[]; containers: { command: string[]; args: string[]; env: { name: string; value?: string; valueFrom?: unknown }[]; volumeMounts: { name: string; mountPath: string }[]; securityContext: { capabilities: { add: string[]; drop: string[] } } }[]; volumes: { name: string; configMap?: { name: string } }[] } };
      };
    };
    const pod = ds.spec.template.spec;
    const [container] = pod.containers;
    expect(container?.command).toEqual([IMAGE.tini, '--', IMAGE.node, ...AGENT_NODE_FLAGS, '--snapshot-blob', IMAGE.snapshot]);
    expect(container?.args).toEqual(['run', '--config', '/etc/weft/']);
    // The image starts the same way when run on its own (podman run, the image test).
    const containerfile = readFileSync(join(repo, 'Containerfile'), 'utf8');
    expect(JSON.parse(/^ENTRYPOINT (.+)$/m.exec(containerfile)?.[1] ?? '[]')).toEqual(container?.command);
    expect(JSON.parse(/^CMD (.+)$/m.exec(containerfile)?.[1] ?? '[]')).toEqual(container?.args);
    for (const [name, value] of Object.entries(AGENT_ENV)) expect(container?.env).toContainEqual({ name, value });
    expect(container?.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    const configVolume = pod.volumes.find((v) => v.configMap?.name === 'weft-config');
    expect(container?.volumeMounts).toContainEqual(expect.objectContaining({ name: configVolume?.name, mountPath: '/etc/weft' }));
    expect(container?.securityContext.capabilities).toEqual({ drop: ['ALL'], add: EXPECTED_CAPABILITIES[overlay] ?? ['NET_ADMIN'] });
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(ds.spec.updateStrategy.rollingUpdate).toEqual({ maxUnavailable: 1, maxSurge: 0 });
  });
});

it('every overlay is listed with what it installs', () => {
  expect(overlays).toEqual(Object.keys(EXPECTED_PLUGINS).sort());
});
