import { afterEach, describe, expect, it } from 'vitest';
import { fakeConfigMap } from '../../../test/support/configmap.js';
import { watchConfigFile } from './watch.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function collector() {
  const seen: string[] = [];
  let wake: (() => void) | undefined;
  return {
    seen,
    onChange: (text: string) => {
      seen.push(text);
      wake?.();
    },
    next: (timeoutMs = 3_000) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no change reported')), timeoutMs);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      }),
  };
}

describe('watchConfigFile', () => {
  it('reports a ConfigMap update (a ..data symlink swap) once, with the new text', async () => {
    const cm = await fakeConfigMap({ 'weft.yaml': 'log: {level: info}\n' });
    cleanups.push(() => cm.remove());
    const c = collector();
    const w = watchConfigFile(cm.path('weft.yaml'), { onChange: c.onChange, pollMs: 60_000, settleMs: 20 });
    cleanups.push(() => w.close());
    w.initial('log: {level: info}\n');
    const next = c.next();
    await cm.update({ 'weft.yaml': 'log: {level: debug}\n' });
    await next;
    expect(c.seen).toEqual(['log: {level: debug}\n']);
  });

  it('ignores events that do not change the content', async () => {
    const cm = await fakeConfigMap({ 'weft.yaml': 'a: 1\n', 'other.yaml': 'x' });
    cleanups.push(() => cm.remove());
    const c = collector();
    const w = watchConfigFile(cm.path('weft.yaml'), { onChange: c.onChange, pollMs: 60_000, settleMs: 20 });
    cleanups.push(() => w.close());
    w.initial('a: 1\n');
    await cm.update({ 'weft.yaml': 'a: 1\n', 'other.yaml': 'y' });
    await new Promise((r) => setTimeout(r, 200));
    expect(c.seen).toEqual([]);
  });

  it('finds a change by polling when no event arrives', async () => {
    const cm = await fakeConfigMap({ 'weft.yaml': 'a: 1\n' });
    cleanups.push(() => cm.remove());
    const c = collector();
    // Events settle only after a minute here, so only the poll can see this change.
    const w = watchConfigFile(cm.path('weft.yaml'), { onChange: c.onChange, pollMs: 50, settleMs: 60_000 });
    cleanups.push(() => w.close());
    w.initial('a: 1\n');
    const next = c.next();
    await cm.update({ 'weft.yaml': 'a: 2\n' });
    await next;
    expect(c.seen).toEqual(['a: 2\n']);
  });
});
