import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

// The core's directories are layers: errors and build facts (src/errors.ts, src/build-info.ts) at the bottom, then the kernel model and driver, the
// plugin API, config, discovery, the reconcile loop, observability, the runtime, and the CLI, lab and test kit on
// top. A directory never imports one that imports it back (tests aside).
const src = fileURLToPath(new URL('../core/src/', import.meta.url));

async function edges(): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.name.endsWith('.ts') && !e.name.includes('.test.') && !e.name.includes('testsuite')) {
        // At the top of src/, index.ts is the public entry (above everything); errors.ts and build-info.ts the base.
        const from = relative(src, dir).split('/')[0] || (e.name === 'index.ts' ? 'index' : '.');
        for (const m of (await readFile(path, 'utf8')).matchAll(/from '(\.[^']+)'/g)) {
          const to = relative(src, normalize(join(dirname(path), m[1] as string))).split('/')[0] as string;
          const layer = to === 'index.js' ? 'index' : to.endsWith('.js') ? '.' : to;
          if (layer !== from) out.set(from, (out.get(from) ?? new Set()).add(layer));
        }
      }
    }
  };
  await walk(src);
  return out;
}

it("the core's directories import each other in one direction only; the kernel knows nothing above it", async () => {
  const graph = await edges();
  const cycles = [...graph].flatMap(([a, tos]) => [...tos].filter((b) => graph.get(b)?.has(a) && a < b).map((b) => `${a} <-> ${b}`));
  expect(cycles).toEqual([]);
  expect([...(graph.get('kernel') ?? [])]).toEqual(['.']);
  expect([...(graph.get('api') ?? [])].sort()).toEqual(['.', 'kernel']);
});
