import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isWeftError, type WeftErrorCode } from '../api/errors.js';
import { ConfigError, loadConfigText } from '../config/load.js';
import { loadPlugin, pluginCatalog, usePluginCatalog } from './plugin-loader.js';

const fixtures = fileURLToPath(new URL('../runtime/__fixtures__/', import.meta.url));

async function loadError(key: string, module?: string): Promise<{ code: WeftErrorCode; message: string }> {
  try {
    await loadPlugin({ key, module, baseDir: fixtures });
  } catch (err) {
    if (isWeftError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected loadPlugin to fail');
}

// A distribution's catalog, as the `weft` package names its plugins: the core knows none by itself.
const catalog = [
  { name: 'greeter', module: '@acme/weft-greeter', description: 'says hello', status: 'available', load: () => import(new URL('../runtime/__fixtures__/greeter.mjs', import.meta.url).href) as Promise<Record<string, unknown>> },
  { name: 'vxlan', module: '@weft/plugin-vxlan', description: 'planned', status: { planned: 'a later issue' } },
] as const;

describe('loadPlugin', () => {
  it('knows no plugin by name without a catalog', async () => {
    usePluginCatalog([]);
    expect(pluginCatalog()).toEqual([]);
    expect(await loadError('wireguard')).toEqual({
      code: 'WEFT_PLUGIN_UNKNOWN',
      message: 'unknown plugin "wireguard": this weft carries no built-in plugin; a third-party plugin needs module: <package or path>',
    });
  });

  it("loads a catalog's plugin by its key alone, and by its module name (the bundle carries it)", async () => {
    usePluginCatalog(catalog);
    expect((await loadPlugin({ key: 'greeter', baseDir: fixtures })).name).toBe('greeter');
    expect((await loadPlugin({ key: 'greeter', module: '@acme/weft-greeter', baseDir: fixtures })).name).toBe('greeter');
    expect(() => usePluginCatalog([...catalog, catalog[0]])).toThrow('plugin catalog: greeter twice');
    usePluginCatalog([]);
  });

  it('loads a third-party plugin from a path relative to the config file', async () => {
    const plugin = await loadPlugin({ key: 'greeter', module: './greeter.mjs', baseDir: fixtures });
    expect(plugin.name).toBe('greeter');
    expect(plugin.watches).toEqual(['nodes']);
    expect(plugin.config.safeParse({}).data).toEqual({ greeting: 'hello', port: 8080 });
  });

  it('loads a plugin by npm package name', async () => {
    const plugin = await loadPlugin({ key: 'node-inventory', module: '@weft-examples/node-inventory', baseDir: fixtures });
    expect(plugin.description).toMatch(/example/);
  });

  it.each([
    ['an unknown built-in name', 'flannel', undefined, 'WEFT_PLUGIN_UNKNOWN', /unknown plugin "flannel": built-in plugins are greeter, vxlan; a third-party plugin needs module:/],
    ['a built-in that is still planned', 'vxlan', undefined, 'WEFT_PLUGIN_UNKNOWN', /built-in plugin "vxlan" is not implemented yet/],
    ['a module that throws on import', 'x', './throws-on-import.mjs', 'WEFT_PLUGIN_IMPORT_FAILED', /plugin "x": cannot import \.\/throws-on-import\.mjs: kaboom at import/],
    ['a module that does not exist', 'x', './missing.mjs', 'WEFT_PLUGIN_IMPORT_FAILED', /plugin "x": cannot import \.\/missing\.mjs: .*missing\.mjs/],
    ['a package that is not installed', 'x', '@acme/weft-plugin-nope', 'WEFT_PLUGIN_IMPORT_FAILED', /cannot import @acme\/weft-plugin-nope/],
    ['a module that is no plugin', 'x', './not-a-plugin.mjs', 'WEFT_PLUGIN_INVALID', /has no default export made by definePlugin/],
    ['a plugin for another API version', 'future-api', './future-api.mjs', 'WEFT_PLUGIN_API_VERSION', /written for plugin API version 3, this weft speaks version 2/],
    ['a plugin under another name', 'hello', './greeter.mjs', 'WEFT_PLUGIN_NAME_MISMATCH', /defines the plugin "greeter"; name the config key "greeter"/],
  ] as const)('refuses %s', async (_what, key, module, code, message) => {
    usePluginCatalog(catalog);
    const err = await loadError(key, module);
    usePluginCatalog([]);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('reports a loading error at the config line of the module', async () => {
    const text = 'plugins:\n  future-api:\n    module: ./future-api.mjs\n';
    const err = await loadConfigText(text, 'weft.yaml', { env: {}, baseDir: fixtures }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toBe(
      'weft.yaml:3:13 plugins.future-api.module: plugin "future-api": ./future-api.mjs was written for plugin API version 3, this weft speaks version 2',
    );
  });

  it("validates a third-party plugin's section with its own schema", async () => {
    const text = 'plugins:\n  greeter:\n    module: ./greeter.mjs\n    port: abc\n';
    const err = await loadConfigText(text, 'weft.yaml', { env: {}, baseDir: fixtures }).catch((e: unknown) => e);
    expect((err as ConfigError).message).toBe('weft.yaml:4:11 plugins.greeter.port: expected integer 1-65535, got "abc"');
  });
});
