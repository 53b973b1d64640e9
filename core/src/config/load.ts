import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { isWeftError, WeftError } from '../api/errors.js';
import { HOST_KEYS, type PluginDefinition } from '../api/plugin.js';
import { describeValue } from '../api/schema.js';
import { loadPlugin, type PluginOrigin } from '../runtime/plugin-loader.js';
import { type CoreConfig, CoreConfigSchema, type PluginHostSection } from './schema.js';
import { type ConfigProblem, formatProblem, YamlSource } from './yaml-source.js';

/** An enabled plugin as the config asks for it: its definition, host settings and validated section. */
export interface PluginEntry {
  readonly name: string;
  readonly host: PluginHostSection;
  readonly definition: PluginDefinition;
  /** The plugin's section as its schema output it (host keys removed). */
  readonly config: unknown;
  /** Equal fingerprints mean an equal section: hot reload leaves such a plugin alone. */
  readonly fingerprint: string;
}

/** A whole validated config. */
export interface WeftConfig {
  /** The file it came from (as given), or a label like `<embedded lab config>`. */
  readonly file: string;
  readonly core: CoreConfig;
  /** Enabled plugins, in the order the file lists them (setup order; stop runs in reverse). */
  readonly plugins: readonly PluginEntry[];
}

/** Thrown when a config is refused; `problems` lists every error found, each with file, line and column. */
export class ConfigError extends WeftError {
  constructor(problems: readonly ConfigProblem[]) {
    const sorted = [...problems].sort((a, b) => a.line - b.line || a.col - b.col);
    super('WEFT_CONFIG_INVALID', sorted.map(formatProblem).join('\n'));
    this.problems = sorted;
  }

  /** Every problem, in file order. */
  readonly problems: readonly ConfigProblem[];
}

/** How plugins are found; tests swap it for a fixed table. */
export type PluginResolver = (origin: PluginOrigin) => Promise<PluginDefinition>;

export interface LoadOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly resolvePlugin?: PluginResolver;
}

/** Reads, expands, parses and validates a config file; throws {@link ConfigError}. */
export async function loadConfigFile(file: string, options: LoadOptions = {}): Promise<WeftConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String((err as Error).message);
    throw new ConfigError([{ file, line: 1, col: 1, path: '', message: `cannot read the config file: ${reason}` }]);
  }
  return loadConfigText(text, file, { ...options, baseDir: dirname(resolve(file)) });
}

/** Like {@link loadConfigFile}, for text already in memory; relative `module:` paths resolve against `baseDir`. */
export async function loadConfigText(text: string, file: string, options: LoadOptions & { baseDir?: string } = {}): Promise<WeftConfig> {
  const env = options.env ?? process.env;
  const resolvePlugin = options.resolvePlugin ?? loadPlugin;
  const parsed = YamlSource.parse(file, text, env);
  if ('problems' in parsed) throw new ConfigError(parsed.problems);
  const source = parsed.source;
  const data = source.toJS();

  const core = CoreConfigSchema.safeParse(data, { reportInput: true, error: formatIssue });
  if (!core.success) throw new ConfigError(issuesToProblems(source, [], core.error.issues));

  const rawPlugins = ((data as Record<string, unknown>).plugins ?? {}) as Record<string, unknown>;
  const problems: ConfigProblem[] = [];
  const plugins: PluginEntry[] = [];
  for (const [name, host] of Object.entries(core.data.plugins)) {
    if (!host.enabled) continue;
    const at = ['plugins', name];
    let definition: PluginDefinition;
    try {
      definition = await resolvePlugin({ key: name, module: host.module, baseDir: options.baseDir ?? process.cwd() });
    } catch (err) {
      if (!isWeftError(err)) throw err;
      problems.push(source.problemAt(host.module === undefined ? at : [...at, 'module'], err.message, host.module === undefined ? 'key' : 'value'));
      continue;
    }
    const section = { ...((rawPlugins[name] ?? {}) as Record<string, unknown>) };
    for (const key of HOST_KEYS) delete section[key];
    const result = (definition.config as z.ZodType).safeParse(section, { reportInput: true, error: formatIssue });
    if (!result.success) {
      problems.push(...issuesToProblems(source, at, result.error.issues));
      continue;
    }
    const fingerprint = stableStringify({ module: host.module ?? null, raw: rawPlugins[name] ?? null });
    plugins.push({ name, host, definition, config: result.data, fingerprint });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { file, core: core.data, plugins };
}

function issuesToProblems(source: YamlSource, prefix: readonly PropertyKey[], issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push(source.problemAt([...path, key], `unknown key "${key}"`, 'key'));
    } else if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      // Report the branch that got furthest: the one with the fewest problems.
      const best = [...issue.errors].sort((a, b) => a.length - b.length)[0] ?? [];
      out.push(...issuesToProblems(source, path, best));
    } else {
      out.push(source.problemAt(path, issue.message, 'value'));
    }
  }
  return dedupe(out);
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = formatProblem(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Turns zod's raw issues into weft's "expected X, got Y" messages; schema-level messages take precedence. */
function formatIssue(issue: z.core.$ZodRawIssue): string | undefined {
  const got = describeValue(issue.input);
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return `required: expected ${article(issue.expected)}`;
      return `expected ${article(issue.expected)}, got ${got}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `expected ${describeValue(issue.values[0])}, got ${got}`
        : `expected one of ${issue.values.map((v) => String(v)).join(', ')}, got ${got}`;
    case 'too_small':
      return `expected ${bound(issue.origin, 'at least', issue.minimum, issue.inclusive)}, got ${got}`;
    case 'too_big':
      return `expected ${bound(issue.origin, 'at most', issue.maximum, issue.inclusive)}, got ${got}`;
    case 'invalid_format':
      return `expected ${issue.format === 'regex' ? `text matching ${String(issue.pattern)}` : issue.format}, got ${got}`;
    case 'invalid_key':
      return `invalid key ${got}`;
    default:
      return undefined;
  }
}

function article(type: string): string {
  if (type === 'object' || type === 'record' || type === 'map') return 'a map';
  if (type === 'array') return 'a list';
  if (type === 'int') return 'an integer';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function bound(origin: string, word: string, limit: number | bigint, inclusive: boolean | undefined): string {
  const n = Number(limit) + (inclusive === false ? (word === 'at least' ? 1 : -1) : 0);
  if (origin === 'string') return `${word} ${n} characters`;
  if (origin === 'array' || origin === 'set') return `${word} ${n} items`;
  return `a number ${word} ${n}`;
}

/** JSON with sorted object keys, so equal data gives equal text. */
export function stableStringify(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}
