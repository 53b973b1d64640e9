import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** A program that a file runs (`code`), or shows a reader how to run (`example`: Markdown, doc comments, hints), where. */
export interface ProgramUse {
  readonly program: string;
  readonly file: string;
  readonly line: number;
  readonly kind: 'code' | 'example';
}

/** The program is the first string literal of the call (`execa('ip', …)`, `this.exec('wg', …)`, `run('mount', …)`). */
const CALL = /(?<![.\w])(?:execa|execaSync|spawn|spawnSync|execFile|execFileSync|run|has)\(\s*'([^'\s]+)'|this\.exec\(\s*'([^'\s]+)'/g;
/** `lab.exec(node, ['ping', …])`: the program is the first element of the argument vector. */
const LAB_EXEC = /(?<!this)\.exec\(\s*[^,()]+,\s*\[\s*'([^'\s]+)'/g;
/** `ip netns exec NS prog …`. */
const NETNS_EXEC = /'netns',\s*'exec',\s*[^,\]]+,\s*'([^'\s]+)'/g;
/** `nsenter`/`unshare`/`taskset` with an argument vector: the command is its first element that is not an option. */
const WRAPPER = /'(nsenter|unshare|taskset)',\s*\[([^\]]*)\]/g;
/** `… '--', 'prog'` in an argument vector (`weft lab exec NODE -- prog`). */
const AFTER_DASHES = /'--',\s*'([^'\s-][^'\s]*)'/g;
/** `weft lab exec [--name N] NODE -- prog` written out, in text and hints (also built: `weft lab exec${named} …`). */
const LAB_EXEC_TEXT = /weft lab exec\b[^\n]*? -- ([a-z][\w.+-]*)/g;

const lineOf = (text: string, index: number) => text.slice(0, index).split('\n').length;

/** Whether the match at `index` sits in a comment line (`//`, or a block comment's `/*` or ` *` line). */
function inComment(text: string, index: number): boolean {
  const start = text.lastIndexOf('\n', index - 1) + 1;
  return /^\s*(\/\/|\/\*|\*)/.test(text.slice(start, index));
}

/**
 * The commands of a wrapper's argument vector (the source text between its brackets): after options (`--mount=…`,
 * `--propagation private`: an option without `=` takes the next element as its value) and an optional `--`; when
 * that command wraps another (`taskset … unshare … true`), that one too. None when the element is not a string
 * literal (`process.execPath`).
 */
function wrappedCommands(vector: string): string[] {
  const elements = vector.split(',').map((e) => e.trim()).filter((e) => e !== '');
  const found: string[] = [];
  for (let i = 0; i < elements.length; i++) {
    const literal = /^'([^']*)'$/.exec(elements[i] as string)?.[1];
    const option = literal ?? /^`(-[^`]*)`$/.exec(elements[i] as string)?.[1];
    if (option === '--') {
      const next = /^'([^']*)'$/.exec(elements[i + 1] ?? '')?.[1];
      if (next === undefined) break;
      found.push(next);
      if (!WRAPPERS.has(next)) break;
      i += 1;
      continue;
    }
    if (option?.startsWith('-')) {
      if (!option.includes('=') && !SWITCHES.has(option)) i += 1;
      continue;
    }
    if (literal === undefined) break;
    found.push(literal);
    if (!WRAPPERS.has(literal)) break;
  }
  return found;
}

const WRAPPERS = new Set(['nsenter', 'unshare', 'taskset']);
/** The wrappers' options that take no value (a namespace of the target or a new one; `--fork`). */
const SWITCHES = new Set(['--net', '--mount', '--pid', '--uts', '--ipc', '--user', '--cgroup', '--time', '--fork', '--map-root-user', '-n', '-m', '-p', '-u', '-i', '-U', '-f', '-r']);

/** The programs a TypeScript or JavaScript source runs, by the call shapes weft's code uses. */
export function programsInCode(text: string, file: string): ProgramUse[] {
  const uses: ProgramUse[] = [];
  const add = (program: string | undefined, index: number, kind?: 'example') => {
    if (program) uses.push({ program, file, line: lineOf(text, index), kind: kind ?? (inComment(text, index) ? 'example' : 'code') });
  };
  for (const m of text.matchAll(CALL)) add(m[1] ?? m[2], m.index);
  for (const m of text.matchAll(LAB_EXEC)) add(m[1], m.index);
  for (const m of text.matchAll(NETNS_EXEC)) add(m[1], m.index);
  for (const m of text.matchAll(AFTER_DASHES)) add(m[1], m.index);
  for (const m of text.matchAll(LAB_EXEC_TEXT)) add(m[1], m.index, 'example');
  for (const m of text.matchAll(WRAPPER)) {
    add(m[1], m.index);
    for (const command of wrappedCommands(m[2] as string)) add(command, m.index);
  }
  // Two shapes can match one call (`run('unshare', [...])`): one use per program and line.
  return uses.filter((u, i) => uses.findIndex((v) => v.program === u.program && v.line === u.line) === i);
}

/** Words that are weft itself or Node, not programs a package provides. */
const OURS = new Set(['npx', 'node', 'weft', 'sudo', 'cd', 'export']);

/**
 * The programs a Markdown file's examples run: `weft lab exec NODE -- prog` anywhere; in shell blocks (sh, bash,
 * console) the first word of each command; in those and in unlabelled blocks a `$ ` prompt's command and whatever a
 * pipe feeds. Blocks of other languages, `text` (diagrams) among them, are not commands.
 */
export function programsInMarkdown(text: string, file: string): ProgramUse[] {
  const uses: ProgramUse[] = [];
  for (const m of text.matchAll(LAB_EXEC_TEXT)) uses.push({ program: m[1] as string, file, line: lineOf(text, m.index), kind: 'example' });
  const lines = text.split('\n');
  let fence: string | undefined;
  lines.forEach((raw, i) => {
    const open = /^\s*```(\w*)/.exec(raw);
    if (open) {
      fence = fence === undefined ? open[1] : undefined;
      return;
    }
    if (fence === undefined || (fence !== '' && !['sh', 'bash', 'shell', 'console'].includes(fence))) return;
    const shell = ['sh', 'bash', 'shell', 'console'].includes(fence);
    const code = raw.replace(/\s#.*$/, '');
    const starts: string[] = [];
    const prompt = /^\s*\$ (.*)$/.exec(code);
    if (prompt) starts.push(prompt[1] as string);
    else if (shell && code.trim() !== '') starts.push(code);
    for (const m of code.matchAll(/(?:\||&&)\s+([^|&]+)/g)) starts.push(m[1] as string);
    for (const start of starts) {
      const words = start.trim().split(/\s+/).filter((w) => !/^\w+=/.test(w));
      const word = words[0] === 'sudo' ? words[1] : words[0];
      if (word && /^[a-z][\w.+-]*$/.test(word) && !OURS.has(word)) uses.push({ program: word, file, line: i + 1, kind: 'example' });
    }
  });
  return uses;
}

/** Files under `dir` (recursively) whose names match, skipping node_modules, dist and hidden folders. */
export function filesUnder(root: string, dir: string, match: RegExp): string[] {
  const out: string[] = [];
  const walk = (at: string) => {
    let entries;
    try {
      entries = readdirSync(at, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
      const path = join(at, e.name);
      if (e.isDirectory()) walk(path);
      else if (match.test(e.name)) out.push(relative(root, path));
    }
  };
  walk(join(root, dir));
  return out.sort();
}

/** Every program the repository's code, scripts and Markdown run, found by the shapes above (not in this file's own). */
export function scanRepository(root: string): ProgramUse[] {
  const code = ['core/src', 'plugins', 'examples', 'test', 'tools', 'bench']
    .flatMap((d) => filesUnder(root, d, /\.(ts|mts|mjs|js)$/))
    .filter((f) => !f.endsWith('.d.mts') && f !== 'test/support/program-scan.ts');
  const markdown = ['README.md', ...['docs', 'plugins', 'examples', 'tools'].flatMap((d) => filesUnder(root, d, /\.md$/))];
  return [
    ...code.flatMap((f) => programsInCode(readFileSync(join(root, f), 'utf8'), f)),
    ...markdown.flatMap((f) => programsInMarkdown(readFileSync(join(root, f), 'utf8'), f)),
  ];
}
