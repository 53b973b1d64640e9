import { type Document, isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseAllDocuments, parse as parseYaml, Scalar, visit } from 'yaml';

/** One thing wrong with a config file, located as precisely as the file allows. */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** Key path like `plugins.greeter.port` or `discovery.static.nodes[0].name`; empty for the whole file. */
  readonly path: string;
  readonly message: string;
}

/** Renders `weft.yaml:14:5 plugins.greeter.port: expected integer 1-65535, got "abc"`. */
export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col}${p.path ? ` ${p.path}` : ''}: ${p.message}`;
}

/** Renders a key path the way the config reference writes it. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** How much structure a YAML file may have: a file past these is refused with its position, before it is read as data. */
export interface YamlLimits {
  /** Aliases (`*name`) in the file; each can stand for a whole subtree, and a few can stand for billions of nodes. */
  readonly maxAliases: number;
  /** Nesting of maps and sequences. */
  readonly maxDepth: number;
}

/** Ample for any weft config: an alias or two, a dozen levels. */
export const CONFIG_LIMITS: YamlLimits = { maxAliases: 100, maxDepth: 64 };

/** A parsed YAML file that can say where any key path sits in it. */
export class YamlSource {
  private constructor(
    readonly file: string,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {}

  /**
   * Parses `text`; on syntax errors returns them as problems, and so a file with more aliases or deeper nesting
   * than `limits` allow (the parser's own guard against runaway recursion is a syntax error too). Environment
   * references in values are expanded (see {@link expandEnv}) unless `env` is null; problems with those are
   * returned too.
   */
  static parse(file: string, text: string, env: NodeJS.ProcessEnv | null, limits: YamlLimits = CONFIG_LIMITS): { source: YamlSource } | { problems: ConfigProblem[] } {
    const lines = new LineCounter();
    const docs = parseAllDocuments(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
    const list = Array.isArray(docs) ? docs : [];
    if (list.length > 1) {
      const second = list[1] as Document.Parsed;
      const pos = lines.linePos(second.range[0]);
      return { problems: [{ file, line: pos.line, col: pos.col, path: '', message: 'expected one YAML document, found several (remove the `---`)' }] };
    }
    const doc = list[0];
    if (!doc) return { problems: [{ file, line: 1, col: 1, path: '', message: 'the file is empty' }] };
    const syntax = [...doc.errors, ...doc.warnings.filter((w) => w.code === 'BAD_DIRECTIVE')];
    if (syntax.length > 0) {
      return {
        problems: syntax.map((e) => {
          const pos = e.linePos?.[0] ?? { line: 1, col: 1 };
          return { file, line: pos.line, col: pos.col, path: '', message: `YAML syntax: ${firstLine(e.message)}` };
        }),
      };
    }
    const over = structureProblem(doc, limits);
    if (over) {
      const pos = lines.linePos(over.offset);
      return { problems: [{ file, line: pos.line, col: pos.col, path: '', message: over.message }] };
    }
    const source = new YamlSource(file, doc, lines);
    // `null`: a data file (a node document), where `${…}` is text like any other.
    const problems = env === null ? [] : source.expandEnv(env);
    return problems.length > 0 ? { problems } : { source };
  }

  /** The document as plain data. */
  toJS(): unknown {
    return this.doc.toJS({ maxAliasCount: 100 }) ?? {};
  }

  /** A problem located at `path` (or at the nearest ancestor present in the file). */
  problemAt(path: readonly PropertyKey[], message: string, at: 'value' | 'key' = 'value'): ConfigProblem {
    const offset = this.offsetOf(path, at);
    const pos = this.lines.linePos(offset);
    return { file: this.file, line: pos.line, col: pos.col, path: formatPath(path), message };
  }

  private offsetOf(path: readonly PropertyKey[], at: 'value' | 'key'): number {
    let node: unknown = this.doc.contents;
    let offset = (this.doc.contents as Node | null)?.range?.[0] ?? 0;
    for (const [i, key] of path.entries()) {
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(key));
        if (!pair) return offset;
        const keyNode = pair.key as Scalar;
        if (last && at === 'key') return keyNode.range?.[0] ?? offset;
        const value = pair.value as Node | null;
        // `key:` with no value: point at the key.
        offset = value?.range?.[0] ?? keyNode.range?.[0] ?? offset;
        node = value;
      } else if (isSeq(node) && typeof key === 'number') {
        const item = node.items[key] as Node | undefined;
        if (!item) return offset;
        offset = item.range?.[0] ?? offset;
        node = item;
      } else {
        return offset;
      }
    }
    return offset;
  }

  /**
   * Expands `${NAME}`, `${NAME:-default}` and `${NAME:?message}` in string values; `$${` stands for a literal
   * `${`. A plain (unquoted) value that is one whole reference takes the type its expansion reads as in YAML, so
   * `port: ${PORT}` with `PORT=51820` is the integer 51820; quoted values stay strings.
   */
  private expandEnv(env: NodeJS.ProcessEnv): ConfigProblem[] {
    const problems: ConfigProblem[] = [];
    visit(this.doc, {
      Scalar: (key, node, path) => {
        if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
        const original = node.value;
        const result = expandReferences(original, env);
        if ('error' in result) {
          const pos = this.lines.linePos(node.range?.[0] ?? 0);
          problems.push({ file: this.file, line: pos.line, col: pos.col, path: pathOf(path), message: result.error });
          return;
        }
        let value: unknown = result.value;
        if (node.type === Scalar.PLAIN && /^\$\{[^}]*\}$/.test(original)) {
          const typed: unknown = parseYaml(result.value);
          if (typed === null || typeof typed !== 'object') value = typed;
        }
        node.value = value;
      },
    });
    return problems;
  }
}

/**
 * The first way the document exceeds `limits`, with where: walked with an explicit stack, so that a deep document
 * cannot exhaust the call stack here.
 */
function structureProblem(doc: Document.Parsed, limits: YamlLimits): { offset: number; message: string } | undefined {
  let aliases = 0;
  const stack: { node: unknown; depth: number }[] = [{ node: doc.contents, depth: 0 }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop() as { node: unknown; depth: number };
    if (isAlias(node)) {
      aliases += 1;
      if (aliases > limits.maxAliases) return { offset: node.range?.[0] ?? 0, message: `more than ${String(limits.maxAliases)} aliases (*name); refused, as an alias can stand for a whole tree` };
      continue;
    }
    if (!isMap(node) && !isSeq(node)) continue;
    if (depth + 1 > limits.maxDepth) return { offset: node.range?.[0] ?? 0, message: `nested deeper than ${String(limits.maxDepth)} levels` };
    // Pushed last item first, so that the walk goes in document order (the problem is where a reader meets it).
    for (const item of [...node.items].reverse()) {
      if (isPair(item)) {
        stack.push({ node: item.value, depth: depth + 1 });
        stack.push({ node: item.key, depth: depth + 1 });
      } else stack.push({ node: item, depth: depth + 1 });
    }
  }
  return undefined;
}

function pathOf(path: readonly unknown[]): string {
  const keys: PropertyKey[] = [];
  for (const [i, step] of path.entries()) {
    if (isPair(step) && isScalar(step.key)) keys.push(String(step.key.value));
    else if (isSeq(step)) {
      const next = path[i + 1];
      const index = step.items.indexOf(next);
      if (index >= 0) keys.push(index);
    }
  }
  return formatPath(keys);
}

const REFERENCE = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Expands env references in one string; see {@link YamlSource} for the syntax. */
export function expandReferences(text: string, env: NodeJS.ProcessEnv): { value: string } | { error: string } {
  let error: string | undefined;
  const value = text.replace(REFERENCE, (match, body: string | undefined) => {
    if (match === '$${') return '${';
    if (body === undefined) {
      error ??= `unclosed \${ in ${JSON.stringify(text)}`;
      return match;
    }
    const m = /^([^:]*)(?::([-?])(.*))?$/s.exec(body) as RegExpExecArray;
    const name = m[1] as string;
    const op = m[2];
    const arg = m[3] ?? '';
    if (!ENV_NAME.test(name)) {
      error ??= `bad environment reference \${${body}}: expected \${NAME}, \${NAME:-default} or \${NAME:?message}`;
      return match;
    }
    const set = env[name];
    if (set !== undefined && set !== '') return set;
    if (op === '-') return arg;
    error ??= op === '?' && arg ? `environment variable ${name} is not set: ${arg}` : `environment variable ${name} is not set (write \${${name}:-default} for a default)`;
    return match;
  });
  return error === undefined ? { value } : { error };
}

function firstLine(message: string): string {
  return message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? message;
}
