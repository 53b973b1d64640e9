import { expect, it } from 'vitest';
import { parseExposition } from './support/prometheus.js';

// The strict exposition reader the e2e tests check /metrics with: it must fail where Prometheus would.
it.each([
  ['a sample of no family', 'x 1\n', 'line 1: x has no TYPE'],
  ['a bad metric name', '# TYPE 1x gauge\n', 'line 1: bad TYPE line'],
  ['an unquoted label', '# TYPE x gauge\nx{a=b} 1\n', 'line 2: label a value is not quoted'],
  ['a bad value', '# TYPE x gauge\nx 1,5\n', 'line 2: bad value "1,5"'],
  ['no final newline', '# TYPE x gauge\nx 1', 'the exposition does not end with a newline'],
  ['falling buckets', '# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 3\nh_count 3\n', 'h {}: buckets do not rise'],
  ['a count that differs', '# TYPE h histogram\nh_bucket{le="+Inf"} 3\nh_count 4\n', 'h {}: _count differs from the +Inf bucket'],
])('refuses %s', (_what, text, message) => {
  expect(() => parseExposition(text)).toThrow(message);
});

it('reads what prom-client writes, escapes and NaN included', () => {
  const samples = parseExposition('# HELP x a "gauge"\n# TYPE x gauge\nx{a="q\\"\\\\\\n"} Nan\n\n# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n');
  expect(samples[0]?.labels).toEqual({ a: 'q"\\\n' });
  expect(Number.isNaN(samples[0]?.value)).toBe(true);
  expect(samples).toHaveLength(5);
});
