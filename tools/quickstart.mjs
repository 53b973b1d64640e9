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

// The lab's tools, by the Debian package that has them.
const TOOLS = [
  ['ip', 'iproute2'],
  ['nft', 'nftables'],
  ['wg', 'wireguard-tools'],
  ['wireguard-go', 'wireguard-go'],
  ['nsenter', 'util-linux'],
  ['sysctl', 'procps'],
];
const missing = [...new Set(TOOLS.filter(([cmd]) => !has(cmd)).map(([, pkg]) => pkg))];
if (missing.length > 0) {
  if (!has('apt-get')) fail(`missing ${missing.join(', ')}, and there is no apt-get to install them`);
  say(`installing ${missing.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
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

say('weft lab up');
const lab = spawnSync(node, [join(repo, 'core/bin/weft.js'), 'lab', 'up', ...process.argv.slice(2)], { cwd: repo, stdio: 'inherit' });
if (lab.status === 0) {
  say('the lab is up. Try: npx weft lab status | npx weft lab exec n1 -- ping -c1 198.18.1.12 | npx weft lab logs n1 | npx weft lab down');
}
process.exit(lab.status ?? 1);
