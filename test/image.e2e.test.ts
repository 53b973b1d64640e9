import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { programsSkipReason, skipNote } from './support/capabilities.js';

// The container image, built as `npm run image -- --offline` builds it on a machine without a registry (a Debian
// base made by mmdebstrap, then the Containerfile through buildah) and run with podman the way the DaemonSet runs it:
// read-only root, NET_ADMIN only, the config a directory, the host's net sysctls mounted writable.
const repo = fileURLToPath(new URL('../', import.meta.url));
const skip = programsSkipReason(['image'], 'the image test', { root: true }) ?? (existsSync(join(repo, 'dist/weft/weft.blob')) ? undefined : 'dist/weft/weft.blob is missing: npm run build makes it');
const { version } = JSON.parse(readFileSync(join(repo, 'core/package.json'), 'utf8')) as { version: string };
const tag = `localhost/weft-test:${String(process.pid)}`;
const base = 'localhost/weft-base:bookworm';
const container = `weft-image-test-${String(process.pid)}`;

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

  it('weft doctor runs in it and finds every program the kernel driver runs', async () => {
    const doctor = await podman(['run', '--rm', '--network', 'none', '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN', '--entrypoint', 'weft', tag, 'doctor'], { reject: false });
    for (const tool of ['ip', 'bridge', 'wg', 'wireguard-go', 'nft', 'sysctl', 'nsenter', 'setpriv']) expect(doctor.stdout).toMatch(new RegExp(`^ok +tool ${tool} +/`, 'm'));
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
});
