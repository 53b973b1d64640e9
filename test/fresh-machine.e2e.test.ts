import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { programsSkipReason, skipNote } from './support/capabilities.js';

// The README's first command as a new user meets it: tools/fresh-machine.sh makes a minimal Debian 12 (mmdebstrap)
// with only Node.js and npm, puts this repository's files in it, runs `npm start` there, then every command of its
// closing hint as printed. What this machine has installed cannot help: the check runs in its own mount namespace
// whose root is the fresh system.
const repo = fileURLToPath(new URL('../', import.meta.url));
const skip = programsSkipReason(['fresh'], 'the fresh-machine check', { root: true });

describe.skipIf(skip)(`the quick start on a brand-new Debian 12${skipNote(skip)}`, () => {
  it('npm start installs what is missing and brings the lab up; every command of its hint works', async () => {
    const r = await execa(join(repo, 'tools/fresh-machine.sh'), ['--no-test'], { reject: false, all: true, timeout: 900_000 });
    // What went wrong is on stderr and in the script's own `===` lines, not in apt's chatter.
    const tail = `${(r.all ?? '').split('\n').filter((l) => !/^(Selecting|Preparing|Unpacking|Setting up|Get:|Processing)/.test(l)).join('\n').slice(-5000)}\nexit ${String(r.exitCode)}`;
    expect(r.exitCode, tail).toBe(0);
    // It started without the lab's programs, and installed them itself.
    expect(r.all).toMatch(/^weft quickstart: installing .*\biputils-ping\b.* \(apt-get\)$/m);
    expect(r.all).toMatch(/^lab "lab": 3 nodes, 1 location · .* · converged$/m);
    const ran = [...(r.all ?? '').matchAll(/^=== fresh-machine: (npx weft .*)$/gm)].map((m) => m[1]);
    expect(ran, tail).toEqual([
      'npx weft lab status',
      'npx weft lab exec n1:pod -- ping -c1 198.19.2.10',
      'npx weft lab exec n1 -- wg show',
      'npx weft lab exec n1 -- curl -s http://198.18.1.11:9471/readyz',
      'npx weft lab logs n1',
      'npx weft lab down',
    ]);
    expect(r.all).toContain('=== fresh-machine: done: the quick start works on a fresh Debian 12');
  }, 900_000);
});
