import { describe, expect, it } from 'vitest';
import { WeftError } from '../api/errors.js';
import { definePlugin } from '../api/plugin.js';
import { duration, port, z } from '../api/schema.js';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfigFile, loadConfigText, loadConfigTexts, type PluginResolver } from './load.js';
import { expandReferences } from './yaml-source.js';

const wireguardLike = definePlugin({
  name: 'wireguard',
  apiVersion: '2',
  description: 'test double with a WireGuard-like schema',
  config: z.strictObject({ port: port().default(51820), keepalive: duration().optional(), mtu: z.int().min(1280).optional() }),
  setup: () => ({ reconcile: async () => undefined }),
});

const resolver: PluginResolver = async ({ key }) => {
  if (key === 'wireguard') return Promise.resolve(wireguardLike);
  throw new WeftError('WEFT_PLUGIN_UNKNOWN', `unknown plugin "${key}"`);
};

async function problems(text: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  try {
    await loadConfigText(text, 'weft.yaml', { env, resolvePlugin: resolver });
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

const y = (...lines: string[]) => `${lines.join('\n')}\n`;

describe('config errors name file, line, column, key path and what was expected', () => {
  const cases: [string, string, NodeJS.ProcessEnv, string[]][] = [
    [
      'wrong type in a plugin section',
      y('node:', '  name: n1', 'plugins:', '  wireguard:', '    port: abc'),
      {},
      ['weft.yaml:5:11 plugins.wireguard.port: expected integer 1-65535, got "abc"'],
    ],
    ['port out of range', y('plugins:', '  wireguard:', '    port: 70000'), {}, ['weft.yaml:3:11 plugins.wireguard.port: expected integer 1-65535, got 70000']],
    [
      'unknown key in a core section points at the key',
      y('http:', '  listen: 127.0.0.1:9471', '  lisen: 1'),
      {},
      ['weft.yaml:3:3 http.lisen: unknown key "lisen"'],
    ],
    ['unknown top-level section', y('nodes:', '  name: x'), {}, ['weft.yaml:1:1 nodes: unknown key "nodes"']],
    ['unknown key in a plugin section', y('plugins:', '  wireguard:', '    prot: 1'), {}, ['weft.yaml:3:5 plugins.wireguard.prot: unknown key "prot"']],
    [
      'malformed YAML',
      y('node:', '  name: [n1', 'log: {}'),
      {},
      ['weft.yaml:3:1: YAML syntax: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ],
    ['duplicate key', y('log:', '  level: info', '  level: debug'), {}, ['weft.yaml:3:3: YAML syntax: Map keys must be unique']],
    ['bad enum value', y('log:', '  level: loud'), {}, ['weft.yaml:2:10 log.level: expected one of trace, debug, info, warn, error, fatal, silent, got "loud"']],
    ['bad duration', y('reconcile:', '  resync: soon'), {}, ['weft.yaml:2:11 reconcile.resync: expected a duration like "10s", "500ms" or "1m30s", got "soon"']],
    ['duration below its minimum', y('reconcile:', '  resync: 10ms'), {}, ['weft.yaml:2:11 reconcile.resync: expected a duration of at least 1s, got "10ms"']],
    [
      'a network with host bits set (the kernel would refuse a route to it)',
      y('cluster:', '  podNetworks: [198.18.5.1/24]'),
      {},
      ['weft.yaml:2:17 cluster.podNetworks[0]: host bits set in "198.18.5.1/24": the network is 198.18.5.0/24'],
    ],
    [
      'nested list item',
      y('discovery:', '  static:', '    nodes:', '      - name: a', '        internalAddresses: [192.0.2.1, not-an-ip]'),
      {},
      ['weft.yaml:5:40 discovery.static.nodes[0].internalAddresses[1]: expected an IP address, got "not-an-ip"'],
    ],
    [
      'missing required key points at its map',
      y('discovery:', '  static:', '    nodes:', '      - internalAddresses: [192.0.2.1]'),
      {},
      ['weft.yaml:4:9 discovery.static.nodes[0].name: required: expected a string'],
    ],
    [
      'unknown plugin points at its key',
      y('plugins:', '  wireguard: {}', '  flannel: {}'),
      {},
      ['weft.yaml:3:3 plugins.flannel: unknown plugin "flannel"'],
    ],
    ['unset env reference', y('node:', '  name: ${NODE_NAME}'), {}, ['weft.yaml:2:9 node.name: environment variable NODE_NAME is not set (write ${NODE_NAME:-default} for a default)']],
    ['bad env reference syntax', y('node:', '  name: ${NODE-NAME}'), {}, ['weft.yaml:2:9 node.name: bad environment reference ${NODE-NAME}: expected ${NAME}, ${NAME:-default} or ${NAME:?message}']],
    ['unclosed env reference', y('node:', '  name: x${NODE'), {}, ['weft.yaml:2:9 node.name: unclosed ${ in "x${NODE"']],
    ['required env with message', y('node:', '  name: ${NODE_NAME:?set it in the DaemonSet}'), {}, ['weft.yaml:2:9 node.name: environment variable NODE_NAME is not set: set it in the DaemonSet']],
    ['env expanding to a bad value', y('plugins:', '  wireguard:', '    port: ${WG_PORT}'), { WG_PORT: 'abc' }, ['weft.yaml:3:11 plugins.wireguard.port: expected integer 1-65535, got "abc"']],
    ['several documents', y('log: {}', '---', 'log: {}'), {}, ['weft.yaml:2:1: expected one YAML document, found several (remove the `---`)']],
    ['a list instead of a map', y('plugins: [wireguard]'), {}, ['weft.yaml:1:10 plugins: expected a map, got a list']],
    ['bad listen address', y('http:', '  listen: 9471'), {}, ['weft.yaml:2:11 http.listen: expected a string, got 9471']],
  ];

  it.each(cases)('%s', async (_name, text, env, expected) => {
    expect(await problems(text, env)).toEqual(expected);
  });

  it('an alias bomb, or nesting past 64 levels, is refused with its position before it is expanded', async () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i <= 110; i++) bomb.push(`b${String(i)}: &b${String(i)} [*${i === 1 ? 'a' : `b${String(i - 1)}`}, *${i === 1 ? 'a' : `b${String(i - 1)}`}]`);
    expect(await problems(bomb.join('\n'))).toEqual(['weft.yaml:52:12: more than 100 aliases (*name); refused, as an alias can stand for a whole tree']);
    const deep = `log: ${'['.repeat(70)}${']'.repeat(70)}`;
    expect(await problems(deep)).toEqual(['weft.yaml:1:69: nested deeper than 64 levels']);
  });

  it('reports every problem of a file at once, in file order', async () => {
    const out = await problems(y('log:', '  level: loud', 'http:', '  listen: x', '  extra: 1'));
    expect(out).toEqual([
      'weft.yaml:2:10 log.level: expected one of trace, debug, info, warn, error, fatal, silent, got "loud"',
      'weft.yaml:4:11 http.listen: expected host:port like "0.0.0.0:9471" or "[::]:9471", got "x"',
      'weft.yaml:5:3 http.extra: unknown key "extra"',
    ]);
  });

  it('is a WeftError with code WEFT_CONFIG_INVALID and structured problems', async () => {
    const err = await loadConfigText('log: {level: 1}\n', 'f.yaml', { env: {}, resolvePlugin: resolver }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('WEFT_CONFIG_INVALID');
    expect((err as ConfigError).problems[0]).toMatchObject({ file: 'f.yaml', line: 1, col: 14, path: 'log.level' });
  });
});

describe('valid configs', () => {
  it('fills defaults for an empty file', async () => {
    const cfg = await loadConfigText('{}\n', 'weft.yaml', { env: {}, resolvePlugin: resolver });
    expect(cfg.core).toMatchObject({
      node: { stateDir: '/var/lib/weft' },
      discovery: { source: 'static', static: { nodes: [] } },
      reconcile: { debounce: 100, resync: 30_000, timeout: 60_000, backoffInitial: 500, backoffMax: 300_000 },
      http: { listen: '0.0.0.0:9471' },
      log: { level: 'info', format: 'auto' },
    });
    expect(cfg.plugins).toEqual([]);
  });

  it('expands env references, typing whole plain references as YAML would', async () => {
    const cfg = await loadConfigText(
      y('node:', '  name: ${NODE_NAME}', '  stateDir: "/var/lib/${SUB:-weft}"', 'plugins:', '  wireguard:', '    port: ${WG_PORT}', '    keepalive: $${LITERAL}s'),
      'weft.yaml',
      { env: { NODE_NAME: 'n7', WG_PORT: '51821' }, resolvePlugin: async () => Promise.resolve(wireguardLike) },
    ).catch((e: unknown) => e);
    // `$${LITERAL}s` is the literal text "${LITERAL}s", which is no duration: the escape works, the schema refuses it.
    expect((cfg as ConfigError).message).toBe('weft.yaml:7:16 plugins.wireguard.keepalive: expected a duration like "10s", "500ms" or "1m30s", got "${LITERAL}s"');

    const ok = await loadConfigText(y('node:', '  name: ${NODE_NAME}', '  stateDir: "/var/lib/${SUB:-weft}"', 'plugins:', '  wireguard:', '    port: ${WG_PORT}'), 'weft.yaml', {
      env: { NODE_NAME: 'n7', WG_PORT: '51821' },
      resolvePlugin: resolver,
    });
    expect(ok.core.node).toEqual({ name: 'n7', stateDir: '/var/lib/weft' });
    expect(ok.plugins[0]?.config).toEqual({ port: 51821 });
  });

  it('enables a plugin with an empty section, skips enabled: false, and keeps host keys out of the plugin config', async () => {
    const cfg = await loadConfigText(y('plugins:', '  wireguard:', '    onBootFailure: continue', '    setupTimeout: 5s', '    mtu: 1420'), 'weft.yaml', {
      env: {},
      resolvePlugin: resolver,
    });
    expect(cfg.plugins[0]).toMatchObject({ name: 'wireguard', config: { port: 51820, mtu: 1420 }, host: { onBootFailure: 'continue', setupTimeout: 5000, enabled: true } });
    const empty = await loadConfigText(y('plugins:', '  wireguard:'), 'weft.yaml', { env: {}, resolvePlugin: resolver });
    expect(empty.plugins[0]?.config).toEqual({ port: 51820 });
    const off = await loadConfigText(y('plugins:', '  wireguard:', '    enabled: false', '    port: 1'), 'weft.yaml', { env: {}, resolvePlugin: resolver });
    expect(off.plugins).toEqual([]);
  });

  it('gives equal sections equal fingerprints, and changed ones different', async () => {
    const load = (port: number) => loadConfigText(y('plugins:', '  wireguard:', `    port: ${port}`), 'w.yaml', { env: {}, resolvePlugin: resolver });
    const [a, b, c] = await Promise.all([load(1), load(1), load(2)]);
    expect(a.plugins[0]?.fingerprint).toBe(b.plugins[0]?.fingerprint);
    expect(a.plugins[0]?.fingerprint).not.toBe(c.plugins[0]?.fingerprint);
  });
});

describe('expandReferences', () => {
  it.each([
    ['plain text', {}, 'plain text'],
    ['${A}-${B:-b}', { A: 'a' }, 'a-b'],
    ['${A:-x}', { A: '' }, 'x'],
    ['$${A}', { A: 'a' }, '${A}'],
    ['cost $5', {}, 'cost $5'],
  ] as const)('%s', (text, env, expected) => {
    expect(expandReferences(text, env)).toEqual({ value: expected });
  });
});

describe('a config directory (a mounted ConfigMap, one file per key)', () => {
  const keepalive = definePlugin({
    name: 'keepalive',
    apiVersion: '2',
    description: 'test double',
    config: z.strictObject({ interval: duration().default(10_000) }),
    setup: () => ({ reconcile: async () => undefined }),
  });
  const both: PluginResolver = async (origin) => (origin.key === 'keepalive' ? keepalive : resolver(origin));
  const load = (files: Record<string, string>) =>
    loadConfigTexts(
      Object.entries(files).map(([file, text]) => ({ file, text })),
      'conf.d',
      { env: {}, resolvePlugin: both },
    );
  const refused = async (files: Record<string, string>) => {
    const err = await load(files).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message.split('\n');
  };

  it('merges the files: each top-level section from the file that has it, plugins from every file', async () => {
    const config = await load({
      'keepalive.yaml': y('plugins:', '  keepalive: {interval: 2s}'),
      'weft.yaml': y('node: {name: n1}', 'log: {level: debug}', 'plugins: {}'),
      'wireguard.yaml': y('plugins:', '  wireguard: {port: 51821}'),
    });
    expect(config.file).toBe('conf.d');
    expect(config.core.node.name).toBe('n1');
    expect(config.core.log.level).toBe('debug');
    expect(config.plugins.map((p) => [p.name, p.config])).toEqual([
      ['keepalive', { interval: 2000 }],
      ['wireguard', { port: 51821 }],
    ]);
  });

  it('errors name the file that holds the key', async () => {
    expect(await refused({ 'a.yaml': y('log: {level: debug}'), 'b.yaml': y('plugins:', '  wireguard:', '    port: abc') })).toEqual([
      'b.yaml:3:11 plugins.wireguard.port: expected integer 1-65535, got "abc"',
    ]);
  });

  it('a section or a plugin set in two files is refused at the second, naming the first, whatever the order', async () => {
    expect(await refused({ 'a.yaml': y('log: {level: debug}'), 'b.yaml': y('reconcile: {resync: 10s}', 'log: {level: info}') })).toEqual([
      'b.yaml:2:1 log: also set in a.yaml:1:1: a top-level section lives in one file (only the entries of plugins: may be spread over several)',
    ]);
    expect(await refused({ 'a.yaml': y('plugins:', '  wireguard: {}'), 'b.yaml': y('plugins:', '  keepalive: {}', '  wireguard: {port: 1}') })).toEqual([
      "b.yaml:3:3 plugins.wireguard: also set in a.yaml:2:3: each plugin's section lives in one file",
    ]);
    expect(await refused({ 'a.yaml': y('plugins: [wireguard]'), 'b.yaml': y('plugins:', '  keepalive: {}') })).toEqual([
      'b.yaml:1:1 plugins: also set in a.yaml:1:1: a top-level section lives in one file (only the entries of plugins: may be spread over several)',
    ]);
  });

  it('every file must parse, and be a map', async () => {
    expect(await refused({ 'a.yaml': y('log: {level: debug'), 'b.yaml': y('- just', '- a list') })).toEqual([
      'a.yaml:2:1: YAML syntax: Flow map in block collection must be sufficiently indented and end with a }',
      'b.yaml:1:1: expected a map of config sections',
    ]);
  });

  it('loadConfigFile reads a directory: its *.yaml and *.yml files, not hidden ones, through symlinks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-confd-'));
    try {
      await mkdir(join(dir, '..2026_12_01'));
      await writeFile(join(dir, '..2026_12_01', 'wireguard.yaml'), y('plugins:', '  wireguard: {port: 51821}'));
      await writeFile(join(dir, 'weft.yml'), y('node: {name: n1}'));
      await writeFile(join(dir, 'README'), 'not a config');
      await writeFile(join(dir, '.hidden.yaml'), 'log: {level: nonsense}');
      await symlink('..2026_12_01/wireguard.yaml', join(dir, 'wireguard.yaml'));
      const config = await loadConfigFile(dir, { env: {}, resolvePlugin: both });
      expect(config.core.node.name).toBe('n1');
      expect(config.plugins.map((p) => p.name)).toEqual(['wireguard']);
      await rm(join(dir, 'weft.yml'));
      await rm(join(dir, 'wireguard.yaml'));
      await expect(loadConfigFile(dir, { env: {}, resolvePlugin: both })).rejects.toThrow(`${dir}:1:1: the config directory holds no *.yaml file`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
