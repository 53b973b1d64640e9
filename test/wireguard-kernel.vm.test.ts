import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Lab } from '../core/src/lab/index.js';
import './support/builtins.js';
import { until } from './support/until.js';

// Inside the VM (test/vm.e2e.test.ts boots it): the same mesh as in the lab on the host, on kernel WireGuard.
describe('the WireGuard mesh on kernel WireGuard', () => {
  it('3 nodes in a lab: the interface is kernel WireGuard; every pod pings every other; handshakes on every pair', async () => {
    // The mesh alone: probing (keepalive) has its own tests, and under TCG its 1 s lab timeout is too short.
    const dir = await mkdtemp(join(tmpdir(), 'weft-vmwg-'));
    const config = join(dir, 'lab.yaml');
    // Under TCG on a busy host the plugin's setup (the kernel probe, a key pair) can take longer than the default 30 s.
    await writeFile(config, 'plugins:\n  wireguard:\n    granularity: full\n    heartbeat: 5s\n    setupTimeout: 240s\n');
    const lab = await Lab.up({ name: 'vmwg', nodes: 3, config, timeoutMs: 240_000 });
    try {
      const s = await lab.status();
      expect(s.problems).toEqual([]);
      const link = await lab.exec('n1', ['ip', '-d', 'link', 'show', 'weft-wg0']);
      expect(link.stdout).toMatch(/\n\s+wireguard /);
      for (const a of s.nodes) {
        for (const b of s.nodes) {
          if (a === b) continue;
          await until(`${a.name}:pod → ${b.name}'s pod`, async () => (await lab.exec(`${a.name}:pod`, ['ping', '-c', '1', '-W', '2', b.pod], { timeoutMs: 20_000 })).exitCode === 0, 120_000);
        }
      }
      for (const n of s.nodes) {
        const hs = (await lab.exec(n.name, ['wg', 'show', 'weft-wg0', 'latest-handshakes'])).stdout.trim().split('\n');
        expect(hs, n.name).toHaveLength(2);
        for (const line of hs) expect(Number(line.split('\t')[1]), line).toBeGreaterThan(0);
      }
    } finally {
      await lab.down();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
