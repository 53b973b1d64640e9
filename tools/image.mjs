#!/usr/bin/env node
// Builds weft's container image from the Containerfile: `npm run image [-- OPTIONS]` (after `npm run build`).
//
//   --offline        no container registry: the base is a Debian root file system made by mmdebstrap from the
//                    Debian archive and committed as localhost/weft-base:bookworm (the Containerfile's apt-get still
//                    reaches the Debian archive, as mmdebstrap does)
//   --base IMAGE     the base image (default: the Containerfile's, debian:bookworm-slim from a registry)
//   --tool NAME      buildah or podman (default: the first of them on PATH)
//   --tag NAME       the image's name (default: localhost/weft:VERSION)
//
// The image carries the Node executable that runs this script — the one `npm run build` used, since the startup
// snapshot serves only the exact executable that made it — and dist/weft/ (the bundle and its snapshot). Prints the
// image's name and size.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const { version } = JSON.parse(readFileSync(join(root, 'core/package.json'), 'utf8'));
const { values: opts } = parseArgs({
  options: {
    offline: { type: 'boolean', default: false },
    base: { type: 'string' },
    tool: { type: 'string' },
    tag: { type: 'string', default: `localhost/weft:${version}` },
  },
});

const onPath = (name) => (process.env.PATH ?? '').split(delimiter).some((dir) => {
  try {
    accessSync(join(dir, name), constants.X_OK);
    return true;
  } catch {
    return false;
  }
});
/** Undone when the process exits, also after a failed step. */
const atExit = [];
process.on('exit', () => {
  for (const undo of atExit.reverse()) undo();
});
const fail = (message) => {
  process.stderr.write(`image: ${message}\n`);
  process.exit(1);
};
const run = (file, args, options = {}) => {
  process.stderr.write(`+ ${file} ${args.join(' ')}\n`);
  const r = spawnSync(file, args, { stdio: ['ignore', options.capture ? 'pipe' : 'inherit', 'inherit'], encoding: 'utf8' });
  if (r.status !== 0) fail(`${file} ${args[0] ?? ''} failed (exit ${String(r.status ?? r.signal)})`);
  return r.stdout ?? '';
};

const tool = opts.tool ?? ['buildah', 'podman'].find(onPath);
if (!tool || !['buildah', 'podman'].includes(tool)) fail('needs buildah or podman (apt-get install buildah)');

// The context: what the Containerfile copies.
const blob = join(root, 'dist/weft/weft.blob');
if (!existsSync(blob)) fail('dist/weft/weft.blob is missing: run npm run build first');
const check = spawnSync(process.execPath, ['--snapshot-blob', blob, '--', '--version'], { encoding: 'utf8' });
if (check.status !== 0 || check.stdout.trim() !== version) fail(`dist/weft/weft.blob was not built by ${process.execPath} (run npm run build with it): ${check.stderr.split('\n')[0] ?? ''}`);
const context = join(root, 'build/image');
rmSync(context, { recursive: true, force: true });
mkdirSync(context, { recursive: true });
atExit.push(() => rmSync(context, { recursive: true, force: true }));
cpSync(process.execPath, join(context, 'node'));
// Not snapshot.cjs: the source the blob was built from; the blob holds it (1.5 MiB the image need not carry twice).
cpSync(join(root, 'dist/weft'), join(context, 'weft'), { recursive: true, filter: (src) => !src.endsWith('/snapshot.cjs') });
// `weft` on PATH in the image: the bundle's CLI (an operator's `kubectl exec … weft doctor`).
writeFileSync(join(context, 'weft-cli'), "#!/usr/local/bin/node\nimport('/usr/lib/weft/weft.mjs');\n", { mode: 0o755 });
cpSync(join(root, 'Containerfile'), join(context, 'Containerfile'));

let base = opts.base;
if (opts.offline && !base) {
  if (tool !== 'buildah') fail('--offline makes its base with buildah (apt-get install buildah mmdebstrap)');
  if (!onPath('mmdebstrap')) fail('--offline needs mmdebstrap (apt-get install mmdebstrap)');
  base = 'localhost/weft-base:bookworm';
  const tar = join(context, '..', 'weft-base.tar');
  atExit.push(() => rmSync(tar, { force: true }));
  // As Debian's own slim images: no manual pages, documentation or translations (dpkg keeps excluding them for
  // the Containerfile's apt-get too), and no apt caches.
  const slim = ['/usr/share/man/*', '/usr/share/doc/*', '/usr/share/info/*', '/usr/share/locale/*', '/usr/share/lintian/*'].map((p) => `--dpkgopt=path-exclude=${p}`);
  const keep = ['/usr/share/doc/*/copyright', '/usr/share/locale/locale.alias'].map((p) => `--dpkgopt=path-include=${p}`);
  run('mmdebstrap', ['--variant=minbase', '--format=tar', '--quiet', ...slim, ...keep, '--aptopt=Acquire::Languages "none"', '--customize-hook=rm -rf "$1"/var/cache/apt/*.bin "$1"/var/lib/apt/lists/*', 'bookworm', tar]);
  const container = run('buildah', ['from', 'scratch'], { capture: true }).trim();
  // The working container goes however this ends (a failed step exits the process).
  atExit.push(() => spawnSync('buildah', ['rm', container], { stdio: 'ignore' }));
  run('buildah', ['add', container, tar, '/']);
  run('buildah', ['config', '--cmd', '/bin/bash', container]);
  run('buildah', ['commit', '--quiet', container, base], { capture: true });
}

// --force-rm: no intermediate container left behind by a failed step.
const buildArgs = ['build', '--force-rm', '--file', join(context, 'Containerfile'), '--tag', opts.tag, ...(base ? ['--build-arg', `BASE=${base}`] : [])];
// buildah's chroot isolation: no OCI runtime needed for the RUN steps (this machine's crun refuses its cgroups).
if (tool === 'buildah') buildArgs.push('--isolation', 'chroot', '--layers=false');
if (tool === 'podman' && opts.offline) buildArgs.push('--pull=never');
run(tool, [...buildArgs, context]);

const size = run(tool, ['images', '--noheading', '--format', '{{.Size}}', opts.tag], { capture: true });
process.stdout.write(`image: ${opts.tag}, ${size.trim()}\n`);
