import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { Lab } from '../core/src/lab/index.js';
import { httpGet } from '../core/src/observe/http-get.js';
import { netnsSkipReason, skipNote } from './support/capabilities.js';
import { labNames } from './support/labs.js';
import './support/builtins.js';
import { until } from './support/until.js';

// docs/operations.md, "Switching a plugin off", on real namespaces: a plugin taken out of a running agent's config is
// stopped with cleanup — its kernel objects and its annotations go — and the other plugins run on untouched.
const skip = await netnsSkipReason();
const labName = labNames();

describe.skipIf(skip)(`operations in the lab${skipNote(skip)}`, () => {
  it('a plugin removed from the config is stopped with cleanup; the others go on', async () => {
    const lab = await Lab.up({ name: labName('ops'), nodes: 2, timeoutMs: 60_000 });
    try {
      expect((await lab.waitConverged(30_000)).converged).toBe(true);
      const document = () => readFile(join(lab.dir, 'nodes', 'n1.yaml'), 'utf8').then((t) => parse(t) as { annotations?: Record<string, string> });
      const wireguardAnnotations = async () => Object.keys((await document()).annotations ?? {}).filter((k) => k.startsWith('weft.io/wireguard'));
      expect((await lab.exec('n1', ['ip', 'link', 'show', 'weft-wg0'])).exitCode).toBe(0);
      expect(await wireguardAnnotations()).not.toEqual([]);
      const keepaliveRoutesBefore = (await lab.exec('n1', ['ss', '-Htln', 'sport = :9472'])).stdout;
      expect(keepaliveRoutesBefore).toMatch(/LISTEN/);

      // What an operator's ConfigMap change does: the file replaced (a rename, as the kubelet swaps ..data).
      const file = join(lab.dir, 'n1', 'weft.yaml');
      const config = parse(await readFile(file, 'utf8')) as { plugins: Record<string, unknown> };
      delete config.plugins.wireguard;
      await writeFile(`${file}.new`, stringify(config));
      await rename(`${file}.new`, file);

      await until('n1 removed its WireGuard device', async () => (await lab.exec('n1', ['ip', 'link', 'show', 'weft-wg0'])).exitCode !== 0, 20_000);
      await until("n1's document lost the wireguard annotations", async () => (await wireguardAnnotations()).length === 0, 20_000);
      await until('n2 dropped n1 as a WireGuard peer', async () => (await lab.exec('n2', ['wg', 'show', 'weft-wg0', 'peers'])).stdout.trim() === '', 30_000);
      const log = await readFile(lab.logFile('n1'), 'utf8');
      expect(log).toMatch(/"plugin":"wireguard","msg":"plugin removed from config; stopping it and cleaning up"/);
      // keepalive goes on: it took the overlay service of the wireguard plugin (optionally), so it is set up again
      // without it — not removed — and serves its probes again; n1 ready with one plugin.
      await until('keepalive on n1 listens again', async () => /LISTEN/.test((await lab.exec('n1', ['ss', '-Htln', 'sport = :9472'])).stdout), 30_000);
      expect(await readFile(lab.logFile('n1'), 'utf8')).toMatch(/"plugin":"keepalive","msg":"a service it uses is reconfigured, removed or added; setting it up again"/);
      const ready = await httpGet({ socket: join(lab.dir, 'n1', 'http.sock') }, '/readyz', 5_000);
      expect(ready.status).toBe(200);
      expect(log).not.toMatch(/"plugin":"keepalive","msg":"plugin removed from config/);
    } finally {
      await lab.down();
    }
  }, 180_000);
});
