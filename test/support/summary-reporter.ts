import type { Reporter, TestCase, TestModule, TestSuite } from 'vitest/node';

const SKIP_NOTE = / \(SKIPPED: (.+)\)$/;

/** The reason a skipped test gives in its own name or an enclosing suite's (test/support/capabilities.ts, skipNote). */
function skipReason(test: TestCase): { what: string; reason: string } | undefined {
  for (let at: TestCase | TestSuite | TestModule = test; at.type !== 'module'; at = at.parent) {
    const m = SKIP_NOTE.exec(at.name);
    if (m) return { what: at.name.slice(0, m.index), reason: m[1] as string };
  }
  return undefined;
}

/**
 * One line naming what was skipped and why (each reason says which package would enable it), or undefined when
 * nothing was: `skipped 3: kernel suite in a VM (1) — missing qemu-system-x86_64 (qemu-system-x86): apt-get install …`.
 */
export function skippedLine(skipped: readonly TestCase[]): string | undefined {
  if (skipped.length === 0) return undefined;
  const byReason = new Map<string, Map<string, number>>();
  for (const test of skipped) {
    const { what, reason } = skipReason(test) ?? { what: `${test.module.relativeModuleId} › ${test.name}`, reason: 'no reason given' };
    const suites = byReason.get(reason) ?? new Map<string, number>();
    suites.set(what, (suites.get(what) ?? 0) + 1);
    byReason.set(reason, suites);
  }
  const groups = [...byReason].map(([reason, suites]) => `${[...suites].map(([what, n]) => `${what} (${String(n)})`).join(', ')} — ${reason}`);
  return `skipped ${String(skipped.length)}: ${groups.join('; ')}`;
}

/**
 * Prints the closing lines: what was skipped and why (when anything was), then the line CI reads,
 * `N passed, N failed, N skipped`. A test file that fails to load and an unhandled error each count as one failure,
 * so a broken run can never read as green.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    const skipped: TestCase[] = [];
    for (const mod of testModules) {
      let tests = 0;
      for (const test of mod.children.allTests()) {
        tests += 1;
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failed += 1;
        else skipped.push(test);
      }
      if (tests === 0 && mod.state() === 'failed') failed += 1;
      else if (mod.errors().length > 0) failed += mod.errors().length;
    }
    const line = skippedLine(skipped);
    if (line) process.stdout.write(`\n${line}`);
    process.stdout.write(`\n${String(passed)} passed, ${String(failed)} failed, ${String(skipped.length)} skipped\n`);
  }
}
