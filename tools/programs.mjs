#!/usr/bin/env node
// The external programs weft, its lab, its tests and the README's examples run, each with the Debian package that
// has it: one place for that fact. `tools/quickstart.mjs` installs the groups `npm start` needs, `.ci/run` installs
// every group, the tests' skip checks read it (test/support/capabilities.ts), and test/programs.test.ts scans the code
// and the README for programs they run and fails on one that is not listed here.
//
// Plain JavaScript without dependencies: quickstart.mjs and .ci/run use it on a fresh machine's own Node (20), before
// `npm ci`. Usage: `node tools/programs.mjs packages [GROUP…]` prints the packages of those groups (all without one);
// `node tools/programs.mjs missing [GROUP…]` prints what is missing and exits 1 when something is.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

/**
 * Who needs a program. `npm start` installs agent, lab and try; `.ci/run` installs all of them.
 * @type {Readonly<Record<string, string>>}
 */
export const GROUPS = Object.freeze({
  agent: 'the agent itself (weft run, plan, doctor, cleanup): the kernel driver',
  lab: 'weft lab (network and mount namespaces, agents in them)',
  try: "what npm start's closing hint and the README's lab examples run",
  e2e: 'the end-to-end tests (root, network namespaces)',
  vm: 'the VM suite (tools/vm/vm-run: a stock Debian kernel under qemu)',
  browser: "the keepalive page's test in a headless browser",
  graph: 'the Graphviz check of weft graph',
  fresh: "tools/fresh-machine.sh: the README's quick start on a brand-new Debian 12 (a test runs it)",
  image: 'npm run image (tools/image.mjs) and the test that builds the image offline and runs it',
  cluster: "the README's install in a cluster, on the operator's machine (never installed here)",
  quickstart: 'npm start itself, before anything is installed',
});

/** The groups `npm start` (tools/quickstart.mjs) installs. */
export const QUICKSTART_GROUPS = Object.freeze(['agent', 'lab', 'try']);

/**
 * @typedef {object} Program
 * @property {string} package  the Debian package that has it
 * @property {readonly string[]} groups  who runs it (keys of GROUPS)
 * @property {string} [via]  a file that runs it where the code scan cannot see it (a shell script, a browser launch)
 * @property {boolean} [prerequisite]  on the machine before anything runs (the README's premise); never installed here
 */

/** @type {Readonly<Record<string, Program>>} */
export const PROGRAMS = Object.freeze({
  ip: { package: 'iproute2', groups: ['agent', 'lab', 'e2e'] },
  bridge: { package: 'iproute2', groups: ['agent'] },
  ss: { package: 'iproute2', groups: ['e2e'] },
  wg: { package: 'wireguard-tools', groups: ['agent', 'try', 'e2e'] },
  'wireguard-go': { package: 'wireguard-go', groups: ['agent', 'lab', 'e2e'] },
  nft: { package: 'nftables', groups: ['agent', 'lab', 'e2e'] },
  sysctl: { package: 'procps', groups: ['agent', 'lab', 'e2e'] },
  nsenter: { package: 'util-linux', groups: ['agent', 'lab'] },
  setpriv: { package: 'util-linux', groups: ['agent'], via: 'core/src/kernel/iproute2.ts' },
  unshare: { package: 'util-linux', groups: ['lab'] },
  taskset: { package: 'util-linux', groups: ['lab'] },
  mount: { package: 'mount', groups: ['lab'] },
  umount: { package: 'mount', groups: ['lab'] },
  true: { package: 'coreutils', groups: ['lab'] },
  ping: { package: 'iputils-ping', groups: ['try', 'e2e'] },
  tcpdump: { package: 'tcpdump', groups: ['try', 'e2e'], via: 'test/vxlan-lab.e2e.test.ts' },
  timeout: { package: 'coreutils', groups: ['e2e'] },
  curl: { package: 'curl', groups: ['try'] },
  grep: { package: 'grep', groups: ['try', 'e2e'] },
  false: { package: 'coreutils', groups: ['e2e'] },
  sleep: { package: 'coreutils', groups: ['e2e'] },
  'qemu-system-x86_64': { package: 'qemu-system-x86', groups: ['vm'], via: 'tools/vm/vm-run' },
  busybox: { package: 'busybox-static', groups: ['vm'], via: 'tools/vm/vm-run' },
  cpio: { package: 'cpio', groups: ['vm'], via: 'tools/vm/vm-run' },
  gzip: { package: 'gzip', groups: ['vm'], via: 'tools/vm/vm-run' },
  xz: { package: 'xz-utils', groups: ['vm'], via: 'tools/vm/vm-run' },
  zstd: { package: 'zstd', groups: ['vm'], via: 'tools/vm/vm-run' },
  modprobe: { package: 'kmod', groups: ['vm'], via: 'tools/vm/vm-run' },
  chromium: { package: 'chromium', groups: ['browser'], via: 'test/keepalive-lab.e2e.test.ts' },
  dot: { package: 'graphviz', groups: ['graph'] },
  mmdebstrap: { package: 'mmdebstrap', groups: ['fresh', 'image'], via: 'tools/fresh-machine.sh' },
  buildah: { package: 'buildah', groups: ['image'], via: 'tools/image.mjs' },
  podman: { package: 'podman', groups: ['image'] },
  // podman's OCI runtime here: Debian's default, crun, refuses this host's hybrid cgroups (test/image.e2e.test.ts).
  runc: { package: 'runc', groups: ['image'], via: 'test/image.e2e.test.ts' },
  openssl: { package: 'openssl', groups: ['image'] },
  git: { package: 'git', groups: ['fresh'], via: 'tools/fresh-machine.sh' },
  tar: { package: 'tar', groups: ['fresh'], via: 'tools/fresh-machine.sh' },
  'apt-get': { package: 'apt', groups: ['quickstart'], prerequisite: true },
  // From Kubernetes' own apt repository (Debian 12's kubernetes-client is 1.20, too old for kustomize components).
  kubectl: { package: 'kubectl', groups: ['cluster'], prerequisite: true },
  npm: { package: 'npm', groups: ['quickstart'], prerequisite: true },
  npx: { package: 'npm', groups: ['quickstart'], prerequisite: true },
});

/**
 * Packages a group needs that hold no program it runs by name (the VM boots the kernel image from /boot).
 * @type {Readonly<Record<string, readonly string[]>>}
 */
export const EXTRA_PACKAGES = Object.freeze({ vm: ['linux-image-6.12-amd64'] });

/** Directories where Debian keeps programs that a non-login shell's PATH may lack. */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function executable(path) {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * Where `name` is on PATH (what execa and spawn would run), or undefined.
 * @param {string} name
 * @param {string} [path]
 * @returns {string | undefined}
 */
export function findProgram(name, path = process.env.PATH ?? '') {
  for (const dir of path.split(delimiter)) {
    if (dir && executable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * The programs of these groups (every group when none is given), sorted.
 * @param {readonly string[]} [groups]
 * @returns {string[]}
 */
export function programsOf(groups = Object.keys(GROUPS)) {
  for (const g of groups) if (!(g in GROUPS)) throw new Error(`unknown program group "${g}"; groups: ${Object.keys(GROUPS).join(', ')}`);
  return Object.keys(PROGRAMS)
    .filter((name) => PROGRAMS[name].groups.some((g) => groups.includes(g)))
    .sort();
}

/**
 * The Debian packages to install for these groups (every group when none is given), sorted and without duplicates;
 * prerequisites (apt-get, npm) are not among them.
 * @param {readonly string[]} [groups]
 * @returns {string[]}
 */
export function packagesOf(groups = Object.keys(GROUPS)) {
  const packages = programsOf(groups)
    .filter((name) => !PROGRAMS[name].prerequisite)
    .map((name) => PROGRAMS[name].package);
  for (const g of groups) packages.push(...(EXTRA_PACKAGES[g] ?? []));
  return [...new Set(packages)].sort();
}

/**
 * @typedef {object} MissingProgram
 * @property {string} program
 * @property {string} package
 * @property {string} [elsewhere]  where it is when it is installed but not on PATH
 */

/**
 * The programs of these groups that are not on PATH.
 * @param {readonly string[]} [groups]
 * @param {string} [path]
 * @returns {MissingProgram[]}
 */
export function missingPrograms(groups, path = process.env.PATH ?? '') {
  const missing = [];
  for (const program of programsOf(groups)) {
    if (findProgram(program, path)) continue;
    const elsewhere = SBIN.map((dir) => join(dir, program)).find(executable);
    missing.push({ program, package: PROGRAMS[program].package, ...(elsewhere ? { elsewhere } : {}) });
  }
  return missing;
}

/**
 * One line that names each missing program and says how to get it:
 * `missing ping (iputils-ping), dot (graphviz): apt-get install iputils-ping graphviz`.
 * @param {readonly MissingProgram[]} missing
 * @returns {string}
 */
export function describeMissing(missing) {
  const absent = missing.filter((m) => !m.elsewhere);
  const offPath = missing.filter((m) => m.elsewhere);
  const parts = [];
  if (absent.length > 0) {
    const packages = [...new Set(absent.map((m) => m.package))];
    parts.push(`missing ${absent.map((m) => `${m.program} (${m.package})`).join(', ')}: apt-get install ${packages.join(' ')}`);
  }
  if (offPath.length > 0) parts.push(`not on PATH: ${offPath.map((m) => `${m.program} (at ${m.elsewhere})`).join(', ')}`);
  return parts.join('; ');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command, ...groups] = process.argv.slice(2);
  const chosen = groups.length > 0 ? groups : undefined;
  try {
    if (command === 'packages') process.stdout.write(`${packagesOf(chosen).join(' ')}\n`);
    else if (command === 'missing') {
      const missing = missingPrograms(chosen);
      if (missing.length > 0) {
        process.stdout.write(`${describeMissing(missing)}\n`);
        process.exitCode = 1;
      }
    } else {
      process.stderr.write('usage: node tools/programs.mjs packages|missing [GROUP…]\n');
      process.exitCode = 2;
    }
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exitCode = 2;
  }
}
