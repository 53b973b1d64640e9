import { generateWireGuardKeyPair } from '../core/src/index.js';
import { main, usePluginCatalog } from '../core/src/cli/index.js';
import { BUILTIN_PLUGINS } from '../distribution/src/index.js';
import { MemoryKernel, startTestAgent } from '../core/src/testing/index.js';
import { expect, it } from 'vitest';
import wireguard from '../plugins/wireguard/src/index.js';

// `weft wireguard graph` and `weft wireguard peer-config`: commands the plugin declares, asking a running agent.
it('weft wireguard graph and peer-config print what the agent serves, and say when it cannot', async () => {
  usePluginCatalog(BUILTIN_PLUGINS);
  const laptop = generateWireGuardKeyPair();
  const kernel = new MemoryKernel();
  const t = await startTestAgent({
    plugins: [{ plugin: wireguard, config: { granularity: 'location', peers: [{ name: 'laptop', publicKey: laptop.publicKey, allowedIPs: ['198.51.100.9/32'] }] } }],
    nodes: [{ name: 'n1', internalAddresses: ['192.0.2.1'], podCIDRs: ['198.18.1.0/24'], labels: { 'topology.kubernetes.io/region': 'eu' } }],
    kernel,
  });
  try {
    await t.waitForReconcile('wireguard');
    const weft = async (...args: string[]) => {
      let out = '';
      let err = '';
      const code = await main(['node', 'weft', ...args], { out: (x) => void (out += x), err: (x) => void (err += x), env: {} });
      return { code, out, err };
    };
    const graph = await weft('wireguard', 'graph', '--url', t.url as string);
    expect(graph.code).toBe(0);
    expect(graph.out).toContain('label="eu";');
    expect(graph.out).toContain('"n1" -- "external:laptop" [label="never"];');
    const conf = await weft('wireguard', 'peer-config', 'laptop', '--url', t.url as string);
    expect(conf.code).toBe(0);
    expect(conf.out).toContain('# n1 (leader of eu)');
    const missing = await weft('wireguard', 'peer-config', 'phone', '--url', t.url as string);
    expect(missing.code).toBe(1);
    expect(missing.err).toBe(`weft: ${t.url ?? ''}/api/wireguard/peer-config?name=phone: HTTP 404: no external peer "phone"; configured: laptop\n`);
    const down = await weft('wireguard', 'graph', '--url', 'http://127.0.0.1:9');
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/^weft: cannot reach the agent at http:\/\/127\.0\.0\.1:9: connect ECONNREFUSED/);
    // The core alone knows no plugin, and so none of its commands.
    usePluginCatalog([]);
    const bare = await weft('wireguard', 'graph', '--url', t.url as string);
    expect([bare.code, bare.err]).toEqual([2, "error: unknown command 'wireguard'\n(add --help for usage)\n"]);
  } finally {
    await t.stop();
  }
});
