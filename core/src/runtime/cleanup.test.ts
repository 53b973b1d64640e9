import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigText } from '../config/load.js';
import { MemoryKernel } from '../kernel/memory.js';
import { createLogger } from '../observe/logger.js';
import { cleanupNode, formatCleanup } from './cleanup.js';

const fixtures = fileURLToPath(new URL('./__fixtures__/', import.meta.url));
let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('weft cleanup', () => {
  it("removes weft's annotations and the plugins' kernel objects, and nothing else", async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-cleanup-'));
    const nodes = join(dir, 'nodes');
    await mkdir(nodes);
    await writeFile(join(nodes, 'n1.yaml'), stringify({ name: 'n1', annotations: { 'weft.io/wireguard-public-key': 'k', 'example.com/keep': 'yes' } }));
    const config = await loadConfigText(
      stringify({ node: { name: 'n1' }, discovery: { source: 'directory', directory: { path: nodes } }, plugins: { 'pod-routes': { module: './pod-routes.mjs' } } }),
      'weft.yaml',
      { env: {}, baseDir: fixtures },
    );
    const kernel = new MemoryKernel();
    await kernel.apply({ name: 'pod-routes', linkPrefix: 'wpr', routeProtocol: 199 }, { links: [{ kind: 'bridge', name: 'wpr0' }], routes: [{ dst: '198.18.2.0/24', dev: 'wpr0' }] });
    kernel.addForeign({ links: [{ kind: 'bridge', name: 'eth9' }] });

    const report = await cleanupNode(config, { env: {}, logger: createLogger({ level: 'silent', format: 'json' }), kernel });
    expect(formatCleanup(report)).toBe(
      ['node n1: removed weft.io/wireguard-public-key', 'pod-routes: removed 2 kernel objects', '  - route 198.18.2.0/24 table 254 metric 0', '  - link wpr0', ''].join('\n'),
    );
    expect(await readFile(join(nodes, 'n1.yaml'), 'utf8')).toContain('example.com/keep: yes');
    expect(await readFile(join(nodes, 'n1.yaml'), 'utf8')).not.toContain('weft.io/');
    expect(kernel.snapshot().links.map((l) => l.name)).toEqual(['eth9']);
  });
});
