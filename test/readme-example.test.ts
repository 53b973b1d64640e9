// The README's TypeScript, read from README.md itself so that it cannot drift: every ```ts block type-checks against
// the code as it is, and the plugin of "Writing a plugin" runs under the test that follows it there.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../', import.meta.url));
const readme = readFileSync(join(repo, 'README.md'), 'utf8');
// Inside the repository, so that `@weft/core` resolves as it does for a workspace package.
const dir = join(repo, 'test-results', `readme-${String(process.pid)}`);

interface Snippet {
  readonly line: number;
  readonly code: string;
}

/** The ```ts blocks of a Markdown text, with the line each starts on. */
function tsBlocks(markdown: string): Snippet[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => ({ line: markdown.slice(0, m.index).split('\n').length + 1, code: m[1] as string }));
}

/** The section under a `## ` heading, up to the next one. */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README.md has no "## ${heading}"`);
  const end = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, end < 0 ? undefined : end);
}

/**
 * The README's test as a module: its imports on top, its body in `run()`, which returns the test agent so that this
 * file can look further; the plugin it names (`hello`) is the README's plugin, written beside it. `origin[i]` is the
 * block's line (0-based) that generated line i came from, or -1.
 */
function testModule(code: string): { text: string; origin: number[] } {
  const lines = code.trimEnd().split('\n').map((l, i) => ({ l, i }));
  const imports = lines.filter(({ l }) => l.startsWith('import '));
  const body = lines.filter(({ l }) => !l.startsWith('import '));
  const out = [
    { l: "import { expect } from 'vitest';", i: -1 },
    { l: "import hello from './plugin.js';", i: -1 },
    ...imports,
    { l: '', i: -1 },
    { l: 'export async function run() {', i: -1 },
    ...body.map(({ l, i }) => ({ l: `  ${l}`, i })),
    { l: '  return t;', i: -1 },
    { l: '}', i: -1 },
  ];
  return { text: `${out.map((o) => o.l).join('\n')}\n`, origin: out.map((o) => o.i) };
}

const all = tsBlocks(readme);
const writing = section(readme, 'Writing a plugin');
const plugin = all.find((s) => writing.includes(s.code) && s.code.includes('definePlugin('));
const test = all.find((s) => writing.includes(s.code) && s.code.includes('startTestAgent('));

describe('the README', () => {
  it('has the plugin and its test in "Writing a plugin"', () => {
    expect(all.length).toBeGreaterThanOrEqual(3);
    expect(plugin?.code).toMatch(/^export default definePlugin\(/m);
    expect(test?.code).toMatch(/^const t = await startTestAgent\(/m);
  });

  it('every TypeScript block type-checks against the code', () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    try {
      // Each block is a module of its own; the test block imports the plugin block as './plugin.js'.
      const files = all.map((s, i) => {
        const file = join(dir, s === plugin ? 'plugin.ts' : s === test ? 'plugin.test.ts' : `block-${String(i)}.ts`);
        const module = s === test ? testModule(s.code) : undefined;
        writeFileSync(file, module?.text ?? s.code);
        return { file, snippet: s, origin: module?.origin };
      });
      const config = ts.getParsedCommandLineOfConfigFile(join(repo, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => expect.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')) });
      const program = ts.createProgram(files.map((f) => f.file), { ...config?.options, noEmit: true, noUnusedLocals: false, noUnusedParameters: false });
      const problems = ts.getPreEmitDiagnostics(program).map((d) => {
        const at = files.find((f) => f.file === d.file?.fileName);
        const pos = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
        // The README's line: the test block's lines went through its wrapper, and come back through `origin`.
        const line = pos === undefined ? 0 : at?.origin ? Math.max(0, at.origin[pos.line] ?? 0) : pos.line;
        const where = at ? `README.md:${String(at.snippet.line + line)}` : relative(repo, d.file?.fileName ?? '?');
        return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
      expect(problems).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('the plugin of "Writing a plugin" passes the test written under it', async () => {
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(join(dir, 'plugin.ts'), plugin?.code ?? '');
      writeFileSync(join(dir, 'readme-test.ts'), testModule(test?.code ?? '').text);
      const { run } = (await import(join(dir, 'readme-test.ts'))) as { run: () => Promise<{ logs: readonly { msg?: string; plugin?: string }[] }> };
      const t = await run();
      // The plugin's logger said its greeting (the README's config default), as its own child logger.
      expect(t.logs.some((l) => l.msg === 'hi' && l.plugin === 'hello')).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
