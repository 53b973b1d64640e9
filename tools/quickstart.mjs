#!/usr/bin/env node
// `npm start`: the README's first command. On a fresh Debian 12 machine, in a fresh clone, as root: installs what is
// missing (the lab's Debian packages, the npm dependencies, the build), then runs `weft lab up` with the arguments
// given after `--` (`npm start -- --nodes 5 --locations 2 --nat`).
//
// Plain JavaScript without dependencies on purpose: on a fresh clone it runs on the machine's own Node (Node 20
// here), before `npm ci` has brought Node 24. Commands run without a shell.
import { spawnSync } from 'node:child_process';
import process from 'node:process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeMissing, missingPrograms, QUICKSTART_GROUPS } from './programs.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (text) => process.stdout.write(`weft quickstart: ${text}\n`);
const fail = (text) => {
  process.stderr.write(`weft quickstart: ${text}\n`);
  process.exit(1);
};

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { cwd: repo, stdio: 'inherit', ...options });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
}

const has = (cmd) => {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !(r.error && r.error.code === 'ENOENT');
};

if (process.platform !== 'linux') fail('the lab needs Linux (network namespaces)');
if (process.getuid?.() !== 0) fail('the lab needs root (network and mount namespaces): run it as root, e.g. sudo npm start');

// What the agents, the lab and the commands of the closing hint run (tools/programs.mjs), by Debian package.
const missing = missingPrograms(QUICKSTART_GROUPS);
if (missing.length > 0) {
  const packages = [...new Set(missing.map((m) => m.package))];
  if (!has('apt-get')) fail(`${describeMissing(missing)}; there is no apt-get here to install them`);
  say(`installing ${packages.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Twice at most: a mirror that fails once (a partial download, a lock) is not worth stopping for.
  for (let attempt = 1; ; attempt++) {
    const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    const install = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
    if (install.status === 0) break;
    if (attempt === 2) fail(`apt-get install ${packages.join(' ')} failed (exit ${install.status ?? install.signal}; apt-get update: exit ${update.status ?? update.signal})`);
    say('apt-get failed; trying once more in 5 s');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5_000);
  }
  const still = missingPrograms(QUICKSTART_GROUPS);
  if (still.length > 0) fail(`installed, yet: ${describeMissing(still)}`);
}

// npm dependencies (Node 24 among them), when missing or older than the lockfile.
const installed = join(repo, 'node_modules/.package-lock.json');
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(join(repo, 'package-lock.json')).mtimeMs) {
  say('installing npm dependencies (npm ci)');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}
const node = join(repo, 'node_modules/.bin/node');
if (!existsSync(node)) fail('npm ci did not install Node 24 (node_modules/.bin/node)');

say('building');
run(node, [join(repo, 'node_modules/typescript/bin/tsc'), '-b', 'tsconfig.build.json']);
run(node, [join(repo, 'tools/bundle.mjs')]); // the lab's agents run the bundle, as the image does

say('weft lab up');
const weft = (args, options) => spawnSync(node, [join(repo, 'distribution/bin/weft.js'), ...args], { cwd: repo, ...options });
const lab = weft(['lab', 'up', ...process.argv.slice(2)], { stdio: 'inherit' });
if (lab.status === 0) say(`the lab is up. Try:\n${hint().map((line) => `  ${line}`).join('\n')}`);
process.exit(lab.status ?? 1);

/** Commands to go on with, one per line (a shell takes each as it is), with the lab's own names and addresses. */
function hint() {
  const args = process.argv.slice(2);
  const at = args.findIndex((a) => a === '--name' || a.startsWith('--name='));
  const name = at < 0 ? undefined : args[at].includes('=') ? args[at].slice('--name='.length) : args[at + 1];
  const named = name ? ` --name ${name}` : '';
  const status = weft(['lab', 'status', '--json', ...(name ? ['--name', name] : [])], { encoding: 'utf8' });
  let lab = { nodes: [], settings: { plugins: [] } };
  try {
    if (status.status === 0) lab = JSON.parse(status.stdout);
  } catch {
    // no addresses to suggest: the commands that need none remain
  }
  const [first, second] = lab.nodes;
  const mesh = lab.settings?.plugins?.includes('wireguard');
  const lines = [`npx weft lab status${named}`];
  if (first && second && mesh) lines.push(`npx weft lab exec${named} ${first.name}:pod -- ping -c1 ${second.pod}   # ${first.name}'s pod to ${second.name}'s, through the mesh`);
  if (first) {
    if (mesh) lines.push(`npx weft lab exec${named} ${first.name} -- wg show`);
    lines.push(`npx weft lab exec${named} ${first.name} -- curl -s http://${first.http}/readyz`);
    lines.push(`npx weft lab logs${named} ${first.name}`);
  }
  lines.push(`npx weft lab down${named}`);
  return lines;
}
