import { describe, expect, it } from 'vitest';
import { allocateLabels, type LabelBook, labelsText, parseLabels } from './labels.js';

const empty: LabelBook = { labels: new Map(), released: new Map() };
const range = { first: 1000, last: 1003, holdMs: 60_000 };

describe('label allocation', () => {
  it.each([
    { what: 'new pods take the lowest free labels, in address order', wanted: ['198.19.1.11', '198.19.1.10'], book: empty, labels: { '198.19.1.10': 1000, '198.19.1.11': 1001 }, released: {}, exhausted: [] },
    {
      what: 'a pod keeps its label (stable across restarts: the book is what the state file held)',
      wanted: ['198.19.1.10', '198.19.1.12'],
      book: { labels: new Map([['198.19.1.12', 1002]]), released: new Map() },
      labels: { '198.19.1.12': 1002, '198.19.1.10': 1000 },
      released: {},
      exhausted: [],
    },
    {
      what: 'a pod gone lets its label go, held: the next new pod does not get it',
      wanted: ['198.19.1.13'],
      book: { labels: new Map([['198.19.1.10', 1000]]), released: new Map() },
      labels: { '198.19.1.13': 1001 },
      released: { 1000: 0 },
      exhausted: [],
    },
    {
      what: 'a held label is free again once its hold has passed',
      wanted: ['198.19.1.13'],
      book: { labels: new Map(), released: new Map([[1000, -60_000]]) },
      labels: { '198.19.1.13': 1000 },
      released: {},
      exhausted: [],
    },
    {
      what: 'the range used up (held labels count): the pods beyond it get none, and say so',
      wanted: ['198.19.1.10', '198.19.1.11', '198.19.1.12', '198.19.1.13'],
      book: { labels: new Map(), released: new Map([[1001, -1], [1002, -1]]) },
      labels: { '198.19.1.10': 1000, '198.19.1.11': 1003 },
      released: { 1001: -1, 1002: -1 },
      exhausted: ['198.19.1.12', '198.19.1.13'],
    },
    {
      what: 'a label outside a narrowed range is let go, and the pod takes one inside',
      wanted: ['198.19.1.10'],
      book: { labels: new Map([['198.19.1.10', 5000]]), released: new Map() },
      labels: { '198.19.1.10': 1000 },
      released: {},
      exhausted: [],
    },
  ])('$what', ({ wanted, book, labels, released, exhausted }) => {
    const r = allocateLabels(wanted, book, { ...range, now: 0 });
    expect(Object.fromEntries(r.book.labels)).toEqual(labels);
    expect(Object.fromEntries(r.book.released)).toEqual(released);
    expect(r.exhausted).toEqual(exhausted);
  });

  it('never gives one label to two pods, over many random rounds of pods coming and going', () => {
    let book: LabelBook = empty;
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    /** Each label's last pod, and when it let the label go. */
    const last = new Map<number, { address: string; goneAt?: number }>();
    for (let round = 0; round < 500; round++) {
      const wanted = Array.from({ length: 20 }, (_, i) => `198.19.1.${String(10 + i)}`).filter(() => random() < 0.5);
      const now = round * 1000;
      const r = allocateLabels(wanted, book, { first: 1000, last: 1029, holdMs: 5000, now });
      const values = [...r.book.labels.values()];
      expect(new Set(values).size).toBe(values.length);
      for (const [label, l] of last) if (l.goneAt === undefined && r.book.labels.get(l.address) !== label) last.set(label, { ...l, goneAt: now });
      for (const [address, label] of r.book.labels) {
        const l = last.get(label);
        // Another pod gets a label only once the last one's hold has passed.
        if (l && l.address !== address) expect(now - (l.goneAt ?? now)).toBeGreaterThanOrEqual(5000);
        if (!l || l.address !== address || l.goneAt !== undefined) last.set(label, { address });
      }
      book = r.book;
    }
  });
});

describe("a peer's labels annotation", () => {
  const node = { name: 'n2', podCIDRs: ['198.19.2.0/24'] };
  const labelRange = { first: 1000, last: 1999 };
  it('round-trips what a node publishes', () => {
    const labels = new Map([['198.19.2.11', 1001], ['198.19.2.10', 1000]]);
    expect(labelsText(labels)).toBe('198.19.2.10=1000,198.19.2.11=1001');
    expect(parseLabels(labelsText(labels), node, labelRange)).toEqual({ labels: new Map([['198.19.2.10', 1000], ['198.19.2.11', 1001]]), problems: [] });
  });
  it.each([
    { what: "another node's pod: left out (a node labels only its own pods)", text: '198.19.3.10=1000,198.19.2.10=1001', labels: { '198.19.2.10': 1001 }, problem: /198\.19\.3\.10: not in n2's pod CIDRs/ },
    { what: 'a label outside the range', text: '198.19.2.10=5,198.19.2.11=1001', labels: { '198.19.2.11': 1001 }, problem: /outside 1000-1999/ },
    { what: 'one label for two pods: both left out, not the first kept', text: '198.19.2.10=1000,198.19.2.11=1000,198.19.2.12=1002', labels: { '198.19.2.12': 1002 }, problem: /1000: given to more than one pod/ },
    { what: 'one pod with two labels: both left out', text: '198.19.2.10=1000,198.19.2.10=1001', labels: {}, problem: /198\.19\.2\.10: given more than one label/ },
    { what: 'garbage', text: 'rm -rf /=1,198.19.2.10=1000', labels: { '198.19.2.10': 1000 }, problem: /expected <pod IP>=<label>/ },
    { what: 'too long: nothing read', text: `${'198.19.2.10=1000,'.repeat(5000)}198.19.2.10=1000`, labels: {}, problem: /more than 65536/ },
  ])('$what', ({ text, labels, problem }) => {
    const r = parseLabels(text, node, labelRange);
    expect(Object.fromEntries(r.labels)).toEqual(labels);
    expect(r.problems.join('; ')).toMatch(problem);
  });
});
