import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DOCTOR_TOOLS } from '../core/src/kernel/capabilities.js';
import { LAB_TOOLS } from '../core/src/lab/lab.js';
import { describeMissing, findProgram, GROUPS, missingPrograms, packagesOf, PROGRAMS, programsOf, QUICKSTART_GROUPS } from '../tools/programs.mjs';
import { E2E_REQUIRED, skipNote } from './support/capabilities.js';
import { programsInCode, programsInMarkdown, scanRepository, type ProgramUse } from './support/program-scan.js';

// The guard against "works here, fails on a fresh machine": every external program weft, its lab, its tests and the
// README's examples run is listed in tools/programs.mjs with its Debian package, and the scripts that set a machine
// up (.ci/run, npm start) install from that list. Then: is each one here?
const repo = fileURLToPath(new URL('../', import.meta.url));
const uses = scanRepository(repo);
const where = (u: ProgramUse) => `${u.file}:${String(u.line)}`;
const shipped = (file: string) => /^(core\/src|plugins\/[^/]+\/src)\//.test(file) && !/\.(e2e\.|vm\.)?test\.ts$|\.testsuite\.ts$/.test(file);

describe('the scan of the code and the docs', () => {
  it('finds a program in every call shape weft uses', () => {
    const code = [
      "await execa('ip', ['-j', 'link']);",
      "const r = await this.exec('wg', ['show', 'all', 'dump']);",
      "await run('mount', ['--bind', a, b]);",
      "await lab.exec('n1:pod', ['ping', '-c1', x]);",
      "await execa('ip', ['netns', 'exec', ns.name, 'nft', '-f', '-']);",
      "await run('unshare', [`--mount=${file}`, '--propagation', 'private', 'true']);",
      "spawn('nsenter', [`--net=${p}`, '--', process.execPath, BIN, 'run']);",
      "await execa(node, [bin, 'lab', 'exec', '--name', name, 'n1', '--', 'false']);",
      "map.has('key'); something.run('x');",
      "await execa('taskset', ['--cpu-list', String(cpu), 'unshare', `--mount=${file}`, '--propagation', 'private', 'true']);",
      '// e.g. `weft lab exec n1 -- curl -s http://198.18.1.11:9471/readyz`',
      "spawn('unshare', ['--net', 'sleep', '120']); await f(['ip', 'netns', 'exec', ns.name], '198.19.60.10/24');",
    ].join('\n');
    expect(programsInCode(code, 'x.ts').map((u) => `${u.program}:${String(u.line)}:${u.kind}`).sort()).toEqual(
      ['ip:1:code', 'wg:2:code', 'mount:3:code', 'ping:4:code', 'ip:5:code', 'nft:5:code', 'unshare:6:code', 'true:6:code', 'nsenter:7:code', 'false:8:code', 'taskset:10:code', 'unshare:10:code', 'true:10:code', 'curl:11:example', 'unshare:12:code', 'sleep:12:code'].sort(),
    );
  });

  it('finds the commands of Markdown examples, and not the words of tables and usage text', () => {
    const md = [
      '```sh',
      'npm start   # comment with | pipes',
      'sudo wg show',
      'curl -s localhost:9471/metrics | grep ^weft_',
      '```',
      '```',
      'npx weft lab up|status|down   the lab',
      'npx weft graph [--url URL | --lab NODE]   DOT (| dot -Tsvg)',
      '$ npx weft plan',
      'n1  loc1  198.18.1.11',
      '```',
      '```text',
      'source (static | directory | kubernetes)',
      '```',
      '| `a` | `b` | prose with `weft lab exec n1:pod -- ping 198.19.2.10` in it |',
    ].join('\n');
    expect(programsInMarkdown(md, 'x.md').map((u) => `${u.program}:${String(u.line)}`).sort()).toEqual(['ping:15', 'npm:2', 'wg:3', 'curl:4', 'grep:4', 'dot:8'].sort());
  });

  it('sees the programs the repository is known to run', () => {
    const found = new Set(uses.map((u) => u.program));
    for (const p of ['ip', 'bridge', 'wg', 'wireguard-go', 'nft', 'sysctl', 'nsenter', 'unshare', 'mount', 'ping', 'curl', 'dot']) expect(found, p).toContain(p);
  });
});

describe('tools/programs.mjs, the list of external programs', () => {
  it('names every program the code, the tests and the docs run, with its Debian package', () => {
    const unlisted = uses.filter((u) => !Object.hasOwn(PROGRAMS, u.program)).map((u) => `${where(u)} runs ${u.program}, which tools/programs.mjs does not list: add it with its Debian package`);
    expect(unlisted).toEqual([]);
  });

  it('puts what the shipped code runs in the agent or lab group', () => {
    const wrong = uses
      .filter((u) => u.kind === 'code' && shipped(u.file) && Object.hasOwn(PROGRAMS, u.program))
      .filter((u) => !PROGRAMS[u.program]?.groups.some((g) => g === 'agent' || g === 'lab'))
      .map((u) => `${where(u)}: ${u.program} is run by shipped code but is in ${PROGRAMS[u.program]?.groups.join(', ') ?? ''}`);
    expect(wrong).toEqual([]);
  });

  it("has npm start install what its hint and the docs' examples run, or the example's file names the package", () => {
    const installed = new Set(programsOf(QUICKSTART_GROUPS));
    const wrong = uses
      .filter((u) => u.kind === 'example' && Object.hasOwn(PROGRAMS, u.program) && !installed.has(u.program) && !PROGRAMS[u.program]?.prerequisite)
      .filter((u) => !readFileSync(`${repo}${u.file}`, 'utf8').includes(`apt-get install ${PROGRAMS[u.program]?.package ?? ''}`))
      .map((u) => `${where(u)}: the example runs ${u.program}; npm start does not install ${PROGRAMS[u.program]?.package ?? ''} and the file does not say "apt-get install ${PROGRAMS[u.program]?.package ?? ''}"`);
    expect(wrong).toEqual([]);
  });

  it('lists nothing that nothing runs; a program the scan cannot see names the file that runs it', () => {
    const found = new Set(uses.map((u) => u.program));
    const stale: string[] = [];
    for (const [name, p] of Object.entries(PROGRAMS)) {
      if (p.via) {
        if (!readFileSync(`${repo}${p.via}`, 'utf8').includes(name)) stale.push(`${name}: ${p.via} does not mention it`);
      } else if (!found.has(name)) stale.push(`${name}: nothing runs it`);
      for (const g of p.groups) if (!Object.hasOwn(GROUPS, g)) stale.push(`${name}: unknown group ${g}`);
    }
    expect(stale).toEqual([]);
  });

  it('agrees with what weft doctor and weft lab check', () => {
    const doctor = new Map(DOCTOR_TOOLS.map(([tool, fix]) => [tool, fix]));
    for (const program of programsOf(['agent'])) {
      const pkg = PROGRAMS[program]?.package ?? '';
      if (pkg === 'coreutils') continue; // Essential in Debian: always there
      expect(doctor.get(program), `weft doctor checks ${program}`).toContain(`apt-get install ${pkg}`);
    }
    const lab = new Map(LAB_TOOLS.map(([tool, pkg]) => [tool, pkg]));
    for (const program of programsOf(['lab'])) {
      const p = PROGRAMS[program];
      if (p?.package === 'coreutils' || p?.groups.includes('agent')) continue; // the agents' programs: weft doctor's
      expect(lab.get(program), `weft lab checks ${program}`).toBe(p?.package);
    }
  });

  it('has npm start install what the end-to-end tests run, so that npm test after npm start runs them', () => {
    const installed = packagesOf(QUICKSTART_GROUPS);
    expect(packagesOf(['e2e']).filter((p) => !installed.includes(p))).toEqual([]);
  });

  it('is what .ci/run and npm start install from', () => {
    const ci = readFileSync(`${repo}.ci/run`, 'utf8');
    expect(ci).toMatch(/\$\(node tools\/programs\.mjs packages\)/);
    // .ci/run names the packages too (for a reader, and for tools that look for them by name): the list it installs.
    expect(/^ {2}# packages: (.*)$/m.exec(ci)?.[1]?.split(' ')).toEqual(packagesOf());
    const quickstart = readFileSync(`${repo}tools/quickstart.mjs`, 'utf8');
    expect(quickstart).toContain("from './programs.mjs'");
    expect(quickstart).toMatch(/missingPrograms\(QUICKSTART_GROUPS\)/);
  });
});

// With WEFT_E2E_REQUIRED=1 (CI) a missing program fails here, by name and package; elsewhere the group is skipped
// and the skip says what to install.
describe('the listed programs are installed', () => {
  for (const group of Object.keys(GROUPS)) {
    const missing = missingPrograms([group]);
    const reason = !E2E_REQUIRED && missing.length > 0 ? describeMissing(missing) : undefined;
    // The name lists the programs; GROUPS says who needs them.
    it.skipIf(reason)(`the ${group} group's programs are installed: ${programsOf([group]).join(', ')}${skipNote(reason)}`, () => {
      expect(missing.map((m) => `${m.program}: ${m.elsewhere ? `not on PATH (at ${m.elsewhere})` : `apt-get install ${m.package}`}`)).toEqual([]);
    });
  }

  it('finds a program on PATH and nothing else', () => {
    expect(findProgram('sh')).toMatch(/\/sh$/);
    expect(findProgram('sh', '/nonexistent')).toBeUndefined();
    expect(missingPrograms(['e2e'], '/nonexistent').map((m) => m.program)).toEqual(programsOf(['e2e']));
    expect(describeMissing([{ program: 'ping', package: 'iputils-ping' }, { program: 'dot', package: 'graphviz' }])).toBe('missing ping (iputils-ping), dot (graphviz): apt-get install iputils-ping graphviz');
  });
});
