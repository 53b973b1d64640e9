import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type ConfigProblem, YamlSource } from './yaml-source.js';

/** One config file's text, as read. */
export interface ConfigText {
  readonly file: string;
  readonly text: string;
}

/** Says where a key path of the config sits: a file, a line and a column. */
export interface ProblemLocator {
  problemAt(path: readonly PropertyKey[], message: string, at?: 'value' | 'key'): ConfigProblem;
}

/** The key whose entries may come from several files of a config directory. */
const SHARED_KEY = 'plugins';

/** A file a config directory holds: `*.yaml` or `*.yml`, not hidden (a ConfigMap's `..data` and its timestamped folders are). */
export function isConfigFileName(name: string): boolean {
  return !name.startsWith('.') && /\.ya?ml$/.test(name);
}

/**
 * Reads a config: a file, or a directory of files (`weft run --config /etc/weft/` on a mounted ConfigMap, one file per
 * key). A directory's files are its `*.yaml` and `*.yml`, by name; each is a whole config document, see
 * {@link ConfigSources}. Missing, unreadable or empty of config files: a problem located at the path, thrown as
 * `problems` by the caller.
 */
export async function readConfigTexts(path: string): Promise<{ texts: ConfigText[]; directory: boolean } | { problems: ConfigProblem[] }> {
  const fail = (message: string) => ({ problems: [{ file: path, line: 1, col: 1, path: '', message }] });
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (err) {
    return fail(`cannot read the config: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : String((err as Error).message)}`);
  }
  if (!isDirectory) {
    try {
      return { texts: [{ file: path, text: await readFile(path, 'utf8') }], directory: false };
    } catch (err) {
      return fail(`cannot read the config file: ${String((err as Error).message)}`);
    }
  }
  const texts: ConfigText[] = [];
  try {
    for (const name of (await readdir(path)).filter(isConfigFileName).sort()) {
      const file = join(path, name);
      // Through symlinks (a ConfigMap's keys are links into `..data`); a folder named like a file is not one.
      if (!(await stat(file)).isFile()) continue;
      texts.push({ file, text: await readFile(file, 'utf8') });
    }
  } catch (err) {
    // Mid-swap of a ConfigMap a link can point at nothing for a moment; the caller reads again later.
    return fail(`cannot read the config directory: ${String((err as Error).message)}`);
  }
  if (texts.length === 0) return fail('the config directory holds no *.yaml file');
  return { texts, directory: true };
}

/**
 * A config made of one or more YAML files (a directory, see {@link readConfigTexts}), merged into one document and
 * able to say which file, line and column any key path of it came from.
 *
 * The rule that makes files from different places compose (kustomize components each adding a key to one
 * ConfigMap): every top-level section lives in one file, except `plugins:`, whose entries may come from any file —
 * each plugin's section in one file. The same section or plugin in two files is refused at the second, naming the
 * first: no file silently overrides another, whatever the order of their names.
 */
export class ConfigSources implements ProblemLocator {
  private constructor(
    /** The first file: where a problem with a section no file holds is shown. */
    private readonly first: YamlSource,
    /** Which source holds each top-level key, and each `plugins.<name>`. */
    private readonly owners: ReadonlyMap<string, YamlSource>,
    private readonly data: unknown,
  ) {}

  /** Parses and merges the files; their syntax problems, and sections set twice, come back as problems. */
  static parse(texts: readonly ConfigText[], env: NodeJS.ProcessEnv | null): { sources: ConfigSources } | { problems: ConfigProblem[] } {
    if (texts.length === 1) {
      // One file: its document as it is (the schema says what is wrong with it).
      const only = texts[0] as ConfigText;
      const parsed = YamlSource.parse(only.file, only.text, env);
      return 'problems' in parsed ? parsed : { sources: new ConfigSources(parsed.source, new Map(), parsed.source.toJS()) };
    }
    const problems: ConfigProblem[] = [];
    const sources: YamlSource[] = [];
    const owners = new Map<string, YamlSource>();
    const data: Record<string, unknown> = {};
    for (const { file, text } of texts) {
      const parsed = YamlSource.parse(file, text, env);
      if ('problems' in parsed) {
        problems.push(...parsed.problems);
        continue;
      }
      const source = parsed.source;
      sources.push(source);
      const doc = source.toJS();
      if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
        problems.push(source.problemAt([], 'expected a map of config sections'));
        continue;
      }
      for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
        const plugins = key === SHARED_KEY && (value === null || (typeof value === 'object' && !Array.isArray(value)));
        if (plugins && !owners.has(key)) {
          // `plugins:` with entries (or none): each entry is the file's own.
          const into = (data[key] ??= {}) as Record<string, unknown>;
          for (const [name, section] of Object.entries((value ?? {}) as Record<string, unknown>)) {
            const first = owners.get(`${key}.${name}`);
            if (first) problems.push(source.problemAt([key, name], `also set in ${where(first, [key, name])}: each plugin's section lives in one file`, 'key'));
            else {
              owners.set(`${key}.${name}`, source);
              into[name] = section;
            }
          }
          continue;
        }
        const first = owners.get(key) ?? (key === SHARED_KEY ? sourceOfPlugins(owners, key) : undefined);
        if (first) {
          problems.push(source.problemAt([key], `also set in ${where(first, [key])}: a top-level section lives in one file (only the entries of plugins: may be spread over several)`, 'key'));
          continue;
        }
        owners.set(key, source);
        data[key] = value;
      }
    }
    const first = sources[0];
    if (problems.length > 0 || !first) return { problems };
    return { sources: new ConfigSources(first, owners, data) };
  }

  /** The merged document as plain data. */
  toJS(): unknown {
    return this.data;
  }

  /** A problem at `path`, in the file that holds it (a section none holds: the first file). */
  problemAt(path: readonly PropertyKey[], message: string, at: 'value' | 'key' = 'value'): ConfigProblem {
    const [top, second] = path;
    const source =
      (top === SHARED_KEY && second !== undefined ? this.owners.get(`${SHARED_KEY}.${String(second)}`) : undefined) ??
      (top !== undefined ? (this.owners.get(String(top)) ?? (top === SHARED_KEY ? sourceOfPlugins(this.owners, SHARED_KEY) : undefined)) : undefined) ??
      this.first;
    return source.problemAt(path, message, at);
  }
}

/** The first file that holds any plugin's section. */
function sourceOfPlugins(owners: ReadonlyMap<string, YamlSource>, key: string): YamlSource | undefined {
  for (const [k, source] of owners) if (k.startsWith(`${key}.`)) return source;
  return undefined;
}

function where(source: YamlSource, path: readonly PropertyKey[]): string {
  const p = source.problemAt(path, '', 'key');
  return `${p.file}:${String(p.line)}:${String(p.col)}`;
}
