import { afterEach, describe, expect, it } from 'vitest';
import { fakeConfigMap } from '../../../test/support/configmap.js';
import type { ConfigText } from './sources.js';
import { watchConfig } from './watch.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

function collector() {
  const seen: string[] = [];
  let wake: (() => void) | undefined;
  return {
    seen,
    onChange: (texts: ConfigText[]) => {
      seen.push(texts.map((t) => `${t.file.replace(/.*\//, '')}=${t.text}`).join(' '));
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

describe('watchConfig', () => {
  it('reports a ConfigMap update (a ..data symlink swap) once, with the new text', async () => {
    const cm = await fakeConfigMap({ 'weft.yaml': 'log: {level: info}\n' });
    cleanups.push(() => cm.remove());
    const c = collector();
    const w = watchConfig(cm.path('weft.yaml'), { onChange: c.onChange, pollMs: 60_000, settleMs: 20 });
    cleanups.push(() => w.close());
    w.initial([{ file: cm.path('weft.yaml'), text: 'log: {level: info}\n' }]);
    const next = c.next();
    await cm.update({ 'weft.yaml': 'log: {level: debug}\n' });
    await next;
    expect(c.seen).toEqual(['weft.yaml=log: {level: debug}\n']);
  });

  it('ignores events that do not change the content', async () => {
    const cm = await fakeConfigMap({ 'weft.yaml': 'a: 1\n', 'other.yaml': 'x' });
    cleanups.push(() => cm.remove());
    const c = collector();
    const w = watchConfig(cm.path('weft.yaml'), { onChange: c.onChange, pollMs: 60_000, settleMs: 20 });
    cleanups.push(() => w.close());
    w.initial([{ file: cm.path('weft.yaml'), text: 'a: 1\n' }]);
    await cm.update({ 'weft.yaml': 'a: 1\n', 'other.yaml': 'y' });
    await new Promise((r) => setTimeout(r, 200));
    expect(c.seen).toEqual([]);
  });

  it('finds a change by polling when no event arrives', async () => {
    const cm = await fakeConfigMap({ 'weft.yaml': 'a: 1\n' });
    cleanups.push(() => cm.remove());
    const c = collector();
    // Events settle only after a minute here, so only the poll can see this change.
    const w = watchConfig(cm.path('weft.yaml'), { onChange: c.onChange, pollMs: 50, settleMs: 60_000 });
    cleanups.push(() => w.close());
    w.initial([{ file: cm.path('weft.yaml'), text: 'a: 1\n' }]);
    const next = c.next();
    await cm.update({ 'weft.yaml': 'a: 2\n' });
    await next;
    expect(c.seen).toEqual(['weft.yaml=a: 2\n']);
  });

  it('a directory: a change of any of its files, or a file that comes or goes, is one change with every file', async () => {
    const cm = await fakeConfigMap({ 'weft.yaml': 'log: {level: info}\n', 'wireguard.yaml': 'plugins: {wireguard: {}}\n' });
    cleanups.push(() => cm.remove());
    const c = collector();
    const w = watchConfig(cm.dir, { onChange: c.onChange, pollMs: 60_000, settleMs: 20 });
    cleanups.push(() => w.close());
    w.initial([
      { file: cm.path('weft.yaml'), text: 'log: {level: info}\n' },
      { file: cm.path('wireguard.yaml'), text: 'plugins: {wireguard: {}}\n' },
    ]);
    let next = c.next();
    await cm.update({ 'weft.yaml': 'log: {level: info}\n', 'wireguard.yaml': 'plugins: {wireguard: {granularity: full}}\n' });
    await next;
    next = c.next();
    await cm.update({ 'keepalive.yaml': 'plugins: {keepalive: {}}\n', 'weft.yaml': 'log: {level: info}\n', 'wireguard.yaml': 'plugins: {wireguard: {granularity: full}}\n' });
    await next;
    expect(c.seen).toEqual([
      'weft.yaml=log: {level: info}\n wireguard.yaml=plugins: {wireguard: {granularity: full}}\n',
      'keepalive.yaml=plugins: {keepalive: {}}\n weft.yaml=log: {level: info}\n wireguard.yaml=plugins: {wireguard: {granularity: full}}\n',
    ]);
  });
});
