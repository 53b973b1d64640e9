import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, pluginCatalog, usePluginCatalog } from '@weft/core/cli';
import { BUILTIN_PLUGINS } from './index.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'weft', ...args], { out: (t) => void (out += t), err: (t) => void (err += t), env: { NODE_NAME: 'n1' } });
  return { code, out, err };
}

beforeAll(() => usePluginCatalog(BUILTIN_PLUGINS));
afterAll(() => usePluginCatalog([]));

describe('the weft distribution: the core and the built-in plugins', () => {
  it('each available catalog entry loads a plugin of its name, and lists it', async () => {
    expect(pluginCatalog().map((p) => p.name)).toEqual(['wireguard', 'vxlan', 'gre-tunnel', 'mpls-lwtunnel', 'keepalive']);
    const r = await cli('plugins');
    const status = Object.fromEntries(r.out.trim().split('\n').slice(1).map((l): [string, string] => {
      const c = l.split(/\s{2,}/);
      return [c[0] ?? '', c[2] ?? ''];
    }));
    expect(status).toEqual({ wireguard: 'available', vxlan: 'available', 'gre-tunnel': 'available', 'mpls-lwtunnel': 'available', keepalive: 'available' });
  });

  it('a lab made without a config runs every available plugin but vxlan (its pod overlay would fight the mesh)', async () => {
    const { inDefaultLab } = await import('@weft/core/lab');
    const loaded = await Promise.all(BUILTIN_PLUGINS.filter((p) => p.status === 'available').map(async (p) => (await (p.load as () => Promise<{ default: Parameters<typeof inDefaultLab>[0] }>)()).default));
    expect(loaded.filter(inDefaultLab).map((d) => d.name)).toEqual(['wireguard', 'keepalive']);
  });

  it("the plugins' commands are the CLI's: weft wireguard graph and peer-config", async () => {
    const r = await cli('--help');
    expect(r.out).toMatch(/\n {2}wireguard\s+encrypted WireGuard mesh/);
    const wg = await cli('wireguard', '--help');
    expect(wg.out).toMatch(/graph \[options\]/);
    expect(wg.out).toMatch(/peer-config \[options\] <name>/);
  });

  it('the committed JSON Schema is the generated one (core and built-in plugins)', async () => {
    const r = await cli('config', 'schema', '--out', join(repo, 'config/weft.schema.json'), '--check');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });
});
