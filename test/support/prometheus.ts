/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests: every line must be a `# HELP`,
 * `# TYPE`, another comment, empty, or a sample; names and label names must be valid; every sample belongs to a
 * declared family; histogram buckets carry `le`, rise monotonically, end with `+Inf` equal to `_count`. Throws with
 * the line number on the first problem; returns the samples.
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, where: string): number {
  // Prometheus reads values with Go's strconv.ParseFloat: NaN and Inf in any case (prom-client writes "Nan").
  if (/^\+?inf$/i.test(text)) return Infinity;
  if (/^-inf$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: bad labels ${JSON.stringify(text)}`);
    const name = text.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (text[eq + 1] !== '"') throw new Error(`${where}: label ${name} value is not quoted`);
    let j = eq + 2;
    let value = '';
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') {
        const next = text[j + 1];
        if (next === 'n') value += '\n';
        else if (next === '\\' || next === '"') value += next;
        else throw new Error(`${where}: bad escape in label ${name}`);
        j++;
      } else value += text[j];
    }
    if (j >= text.length) throw new Error(`${where}: unterminated label ${name}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (i < text.length) throw new Error(`${where}: expected , between labels`);
  }
  return labels;
}

export function parseExposition(text: string): Sample[] {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('the exposition does not end with a newline');
  for (const [n, line] of lines.slice(0, -1).entries()) {
    const where = `line ${String(n + 1)}`;
    if (line.startsWith('# HELP ')) {
      const name = line.slice(7).split(' ')[0] ?? '';
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name in HELP`);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name = '', type = ''] = line.slice(7).split(' ');
      if (!NAME.test(name) || !TYPES.has(type)) throw new Error(`${where}: bad TYPE line`);
      if (types.has(name)) throw new Error(`${where}: ${name} declared twice`);
      types.set(name, type);
      continue;
    }
    // Other comments and empty lines are ignored (the format allows both).
    if (line.startsWith('#') || line === '') continue;
    if (line.trim() === '') throw new Error(`${where}: a line of blanks`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)( -?\d+)?$/.exec(line);
    if (!m) throw new Error(`${where}: not a sample: ${JSON.stringify(line)}`);
    const name = m[1] as string;
    const family = [...types.keys()].find((f) => name === f || ((types.get(f) === 'histogram' || types.get(f) === 'summary') && /^(_bucket|_sum|_count)$/.test(name.slice(f.length)) && name.startsWith(f)));
    if (!family) throw new Error(`${where}: ${name} has no TYPE`);
    samples.push({ name, labels: parseLabels(m[2] ?? '', where), value: parseValue(m[3] as string, where) });
  }
  // Histograms: per label set, buckets rise and the +Inf bucket equals _count.
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const groups = new Map<string, Sample[]>();
    for (const s of samples.filter((x) => x.name === `${family}_bucket`)) {
      if (!('le' in s.labels)) throw new Error(`${family}_bucket without le`);
      const { le: _le, ...rest } = s.labels;
      const key = JSON.stringify(rest);
      groups.set(key, [...(groups.get(key) ?? []), s]);
    }
    for (const [key, buckets] of groups) {
      const values = buckets.map((b) => b.value);
      if (values.some((v, i) => i > 0 && v < (values[i - 1] as number))) throw new Error(`${family} ${key}: buckets do not rise`);
      if (buckets.at(-1)?.labels.le !== '+Inf') throw new Error(`${family} ${key}: no +Inf bucket`);
      const count = samples.find((s) => s.name === `${family}_count` && JSON.stringify(s.labels) === key);
      if (!count || count.value !== values.at(-1)) throw new Error(`${family} ${key}: _count differs from the +Inf bucket`);
    }
  }
  return samples;
}
