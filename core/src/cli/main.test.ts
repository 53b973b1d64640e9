import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../api/errors.js';
import { configJsonSchema } from '../config/json-schema.js';
import { usePluginCatalog } from '../config/plugin-loader.js';
import { main } from './main.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'weft', ...args], { out: (t) => void (out += t), err: (t) => void (err += t), env: { NODE_NAME: 'n1' } });
  return { code, out, err };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('weft CLI', () => {
  it('config validate: exits 2 with file:line:col on a broken file', async () => {
    const file = join(dir, 'weft.yaml');
    await writeFile(file, 'node:\n  name: n1\nhttp:\n  listen: 0.0.0.0:9471\n  extra: true\nreconcile:\n  resync: often\n');
    const r = await cli('config', 'validate', file);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`${file}:5:3 http.extra: unknown key "extra"\n${file}:7:11 reconcile.resync: expected a duration like "10s", "500ms" or "1m30s", got "often"\n`);
  });

  it('config validate: exits 0 on a good file and names the enabled plugins', async () => {
    const file = join(repo, 'config/examples/single-node.yaml');
    const r = await cli('config', 'validate', file);
    expect(r).toEqual({ code: 0, out: `${file}: valid (1 plugin enabled: node-inventory)\n`, err: '' });
  });

  it('config validate: exits 2 on a missing file', async () => {
    const r = await cli('config', 'validate', join(dir, 'absent.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toBe(`${join(dir, 'absent.yaml')}:1:1: cannot read the config: no such file or directory\n`);
  });

  it('every example config validates', async () => {
    const files = (await readdir(join(repo, 'config/examples'))).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect((await cli('config', 'validate', join(repo, 'config/examples', f))).code, f).toBe(0);
  });

  it('run: exits 2 before starting when the config is invalid', async () => {
    const file = join(dir, 'bad-run.yaml');
    await writeFile(file, 'plugins:\n  nope: {}\n');
    const r = await cli('run', '--config', file);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad-run\.yaml:2:3 plugins\.nope: unknown plugin "nope"/);
  });

  it("plugins: lists the catalog's plugins (available, not installed, planned) and the plugins a config enables", async () => {
    usePluginCatalog([
      { name: 'greeter', module: '@acme/weft-greeter', description: 'says hello', status: 'available', load: () => import(new URL('../runtime/__fixtures__/greeter.mjs', import.meta.url).href) as Promise<Record<string, unknown>> },
      { name: 'absent', module: '@acme/weft-absent', description: 'not installed here', status: 'available' },
      { name: 'later', module: '@acme/weft-later', description: 'not written yet', status: { planned: 'issue 99' } },
    ]);
    try {
      const r = await cli('plugins', '--config', join(repo, 'config/examples/single-node.yaml'));
      expect(r.code).toBe(0);
      const lines = r.out.trim().split('\n');
      expect(lines[0]).toMatch(/^NAME\s+SOURCE\s+STATUS\s+DESCRIPTION$/);
      expect(lines.slice(1).map((l) => l.split(/\s{2,}/).slice(0, 3))).toEqual([
        ['greeter', '@acme/weft-greeter', 'available'],
        ['absent', '@acme/weft-absent', 'not installed'],
        ['later', '@acme/weft-later', 'planned (issue 99)'],
        ['node-inventory', '@weft-examples/node-inventory', 'enabled in config'],
      ]);
    } finally {
      usePluginCatalog([]);
    }
    const bare = await cli('plugins');
    expect(bare.out).toContain('(this weft carries no plugins of its own: name one with module: <package or path> in a config');
  });

  it("a plugin's commands: weft <plugin> <command>, from the catalog or the config's plugins, none for the core's own commands", async () => {
    const file = join(dir, 'commands.yaml');
    await writeFile(file, `plugins:\n  greeter:\n    module: ${JSON.stringify(join(repo, 'core/src/runtime/__fixtures__/greeter.mjs'))}\n`);
    const help = await cli('greeter', '--help', '--config', file);
    expect(help.code, help.err).toBe(0);
    expect(help.out).toMatch(/Usage: weft greeter \[options\] \[command\]/);
    expect(help.out).toMatch(/hello \[options\] <who>\s+ask the agent to greet someone/);
    const down = await cli('greeter', 'hello', 'world', '--url', 'http://127.0.0.1:9', '--config', file);
    expect(down.code).toBe(1);
    expect(down.err).toMatch(/^weft: cannot reach the agent at http:\/\/127\.0\.0\.1:9: connect ECONNREFUSED/);
    expect((await cli('greeter', 'hello', 'world')).err).toContain("unknown command 'greeter'");
  });

  it('--version and --help on every command', async () => {
    expect(await cli('--version')).toEqual({ code: 0, out: '0.1.0\n', err: '' });
    for (const cmd of [[], ['run'], ['plan'], ['doctor'], ['cleanup'], ['config'], ['config', 'validate'], ['config', 'schema'], ['plugins']]) {
      const r = await cli(...cmd, '--help');
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.out).toMatch(/^Usage: weft/);
    }
  });

  it('exits 2 on an unknown command or option', async () => {
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('run', '--nope')).code).toBe(2);
  });

  it('the JSON Schema accepts the example configs and rejects what the loader rejects', async () => {
    const { Ajv2020 } = await import('ajv/dist/2020.js');
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    const validate = ajv.compile(configJsonSchema([]));
    const { parse } = await import('yaml');
    const example = parse(await readFile(join(repo, 'config/examples/single-node.yaml'), 'utf8')) as unknown;
    expect(validate(example), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ http: { listen: 1 } })).toBe(false);
    expect(validate({ nodes: {} })).toBe(false);
    expect(validate({ plugins: { acme: { setting: 1 } } })).toBe(false); // a non-built-in needs module:
    expect(validate({ reconcile: { resync: 'soon' } })).toBe(false);
  });

  it('every error code is documented in docs/errors.md', async () => {
    const doc = await readFile(join(repo, 'docs/errors.md'), 'utf8');
    for (const code of Object.keys(ERROR_CODES)) expect(doc, code).toContain(`\`${code}\``);
  });

  it('lab: bad options exit 2 and say which, before anything is built', async () => {
    const nodes = await cli('lab', 'up', '--nodes', '0');
    expect(nodes.code).toBe(2);
    expect(nodes.err).toContain("error: option '--nodes <n>' argument '0' is invalid. --nodes: expected an integer 1-60, got \"0\"");
    const locations = await cli('lab', 'up', '--locations', 'two');
    expect(locations.code).toBe(2);
    expect(locations.err).toContain('--locations: expected an integer 1-8, got "two"');
    const nat = await cli('lab', 'up', '--nat', '--name', 'zz9');
    expect(nat.code).toBe(1);
    expect(nat.err).toBe('weft: --nat: needs at least 2 locations (the first is never behind NAT)\n');
    const name = await cli('lab', 'up', '--name', 'Bad_Name');
    expect(name.err).toContain('lab name: expected 1-10 lowercase letters and digits starting with a letter, got "Bad_Name"');
  });

  it('lab: a --config that sets what the lab sets is refused, naming the file', async () => {
    const file = join(dir, 'lab.yaml');
    await writeFile(file, 'http: {listen: "127.0.0.1:1"}\nplugins: {}\n');
    const r = await cli('lab', 'up', '--name', 'zz8', '--config', file);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`weft: ${file}: the lab sets http itself; a lab config holds only plugins, reconcile and log\n`);
    await writeFile(file, 'plugins:\n  nope: {}\n');
    const bad = await cli('lab', 'up', '--name', 'zz8', '--config', file);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain(`${file}:2:3 plugins.nope: unknown plugin "nope"`);
  });

  it('lab: status, exec and logs of a lab that is not up say so', async () => {
    for (const args of [['status'], ['exec', 'n1', '--', 'true'], ['logs', 'n1']]) {
      const r = await cli('lab', args[0] ?? '', '--name', 'zz7', ...args.slice(1));
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err).toBe('weft: no lab "zz7" is up (nothing at /run/weft-lab/zz7); start one with "weft lab up"\n');
    }
  });
});
