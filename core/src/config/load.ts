import { dirname, resolve } from 'node:path';
import type { z } from 'zod';
import { isWeftError, WeftError } from '../api/errors.js';
import { HOST_KEYS, type PluginDefinition } from '../api/plugin.js';
import { describeValue } from '../api/schema.js';
import { ownershipConflicts } from '../kernel/normalize.js';
import { orderByDependencies } from './dependencies.js';
import { loadPlugin, type PluginOrigin } from './plugin-loader.js';
import { type CoreConfig, CoreConfigSchema, PLUGIN_KEY, PluginHostSection } from './schema.js';
import { ConfigSources, type ConfigText, type ProblemLocator, readConfigTexts } from './sources.js';
import { type ConfigProblem, formatProblem } from './yaml-source.js';

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
  /**
   * Enabled plugins in setup order (stop runs in reverse): the order the file lists them, except that a plugin comes
   * after the plugins whose services it uses (`deps`).
   */
  readonly plugins: readonly PluginEntry[];
}

/** Thrown when a config is refused; `problems` lists every error found, each with file, line and column. */
export class ConfigError extends WeftError {
  constructor(problems: readonly ConfigProblem[]) {
    const sorted = [...problems].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) || a.line - b.line || a.col - b.col);
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
  /** Ids of services the agent gets from elsewhere (a test's `mockService`): no plugin need provide them. */
  readonly servicesGiven?: ReadonlySet<string>;
}

/**
 * Reads a config — a file, or a directory of `*.yaml` files such as a mounted ConfigMap (see {@link ConfigSources} for
 * how they combine) — and the directory relative `module:` paths resolve against. Missing, unreadable, or a directory
 * without config files: a {@link ConfigError} at line 1.
 */
export async function readConfig(path: string): Promise<{ texts: ConfigText[]; baseDir: string }> {
  const read = await readConfigTexts(path);
  if ('problems' in read) throw new ConfigError(read.problems);
  return { texts: read.texts, baseDir: read.directory ? resolve(path) : dirname(resolve(path)) };
}

/** Reads a config file's text; a missing or unreadable file is a {@link ConfigError} at line 1. */
export async function readConfigFile(file: string): Promise<string> {
  const { texts } = await readConfig(file);
  if (texts.length !== 1) throw new ConfigError([{ file, line: 1, col: 1, path: '', message: 'expected a config file, found a directory' }]);
  return (texts[0] as ConfigText).text;
}

/** Reads, expands, parses and validates a config file or directory (see {@link readConfig}); throws {@link ConfigError}. */
export async function loadConfigFile(file: string, options: LoadOptions = {}): Promise<WeftConfig> {
  const { texts, baseDir } = await readConfig(file);
  return loadConfigTexts(texts, file, { ...options, baseDir });
}

/** Like {@link loadConfigFile}, for text already in memory; relative `module:` paths resolve against `baseDir`. */
export async function loadConfigText(text: string, file: string, options: LoadOptions & { baseDir?: string } = {}): Promise<WeftConfig> {
  return loadConfigTexts([{ file, text }], file, options);
}

/**
 * Like {@link loadConfigText}, for the files of a config directory (see {@link ConfigSources}); `label` names the
 * whole (the directory) in the result.
 */
export async function loadConfigTexts(texts: readonly ConfigText[], label: string, options: LoadOptions & { baseDir?: string } = {}): Promise<WeftConfig> {
  const env = options.env ?? process.env;
  const resolvePlugin = options.resolvePlugin ?? loadPlugin;
  const parsed = ConfigSources.parse(texts, env);
  if ('problems' in parsed) throw new ConfigError(parsed.problems);
  const source = parsed.sources;
  const data = source.toJS();

  // Core and plugin sections are checked independently, so that one run reports every problem of the file.
  const core = CoreConfigSchema.safeParse(data, { reportInput: true, error: formatIssue });
  const problems: ConfigProblem[] = core.success ? [] : issuesToProblems(source, [], core.error.issues);
  const rawPlugins = (data as Record<string, unknown> | null)?.plugins;
  const plugins: PluginEntry[] = [];
  if (rawPlugins !== null && typeof rawPlugins === 'object' && !Array.isArray(rawPlugins)) {
    for (const [name, raw] of Object.entries(rawPlugins as Record<string, unknown>)) {
      if (!PLUGIN_KEY.test(name)) continue; // reported by the core schema
      const checked = await checkPlugin(source, name, raw, resolvePlugin, options.baseDir ?? process.cwd());
      if ('problems' in checked) problems.push(...checked.problems);
      else if (checked.entry) plugins.push(checked.entry);
    }
  }
  const owners = plugins.flatMap((p) => (p.definition.kernel ? [{ name: p.name, ...p.definition.kernel }] : []));
  for (const conflict of ownershipConflicts(owners)) {
    problems.push(source.problemAt(['plugins', conflict.plugin], `kernel ownership: ${conflict.message}`, 'key'));
  }
  const { order, problems: unmet } = orderByDependencies(plugins, options.servicesGiven);
  for (const p of unmet) problems.push(source.problemAt(['plugins', p.plugin], `services: ${p.message}`, 'key'));
  if (!core.success || problems.length > 0) throw new ConfigError(problems);
  return { file: label, core: core.data, plugins: order };
}

/** Loads one plugin section's plugin and validates the section with its schema. Host-key errors are the core's. */
async function checkPlugin(
  source: ProblemLocator,
  name: string,
  raw: unknown,
  resolvePlugin: PluginResolver,
  baseDir: string,
): Promise<{ entry?: PluginEntry } | { problems: ConfigProblem[] }> {
  const host = PluginHostSection.safeParse(raw ?? {});
  if (!host.success || !host.data.enabled) return {};
  const at = ['plugins', name];
  let definition: PluginDefinition;
  try {
    definition = await resolvePlugin({ key: name, module: host.data.module, baseDir });
  } catch (err) {
    if (!isWeftError(err)) throw err;
    const onModule = host.data.module !== undefined;
    return { problems: [source.problemAt(onModule ? [...at, 'module'] : at, err.message, onModule ? 'value' : 'key')] };
  }
  const section = { ...((raw ?? {}) as Record<string, unknown>) };
  for (const key of HOST_KEYS) delete section[key];
  const result = (definition.config).safeParse(section, { reportInput: true, error: formatIssue });
  if (!result.success) return { problems: issuesToProblems(source, at, result.error.issues) };
  const fingerprint = stableStringify({ module: host.data.module ?? null, raw: raw ?? null });
  return { entry: { name, host: host.data, definition, config: result.data, fingerprint } };
}

/** Locates zod issues in the YAML they came from. */
export function issuesToProblems(source: ProblemLocator, prefix: readonly PropertyKey[], issues: readonly z.core.$ZodIssue[]): ConfigProblem[] {
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
export function formatIssue(issue: z.core.$ZodRawIssue): string | undefined {
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
