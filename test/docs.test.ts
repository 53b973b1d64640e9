import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../core/src/config/json-schema.js';

const repo = fileURLToPath(new URL('../', import.meta.url));

type Schema = { properties?: Record<string, Schema>; items?: Schema };

/** Every key path of the core config, as the README's reference writes it (`discovery.static.nodes[]`). */
function keyPaths(schema: Schema, prefix = ''): string[] {
  const out: string[] = [];
  for (const [key, sub] of Object.entries(schema.properties ?? {})) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (key === 'plugins') continue;
    if (sub.items?.properties) out.push(`${path}[]`);
    else if (sub.properties) out.push(...keyPaths(sub, path));
    else out.push(path);
  }
  return out;
}

describe('README', () => {
  it('documents every core config key and every plugin host key', async () => {
    const readme = await readFile(`${repo}README.md`, 'utf8');
    const schema = configJsonSchema([]) as Schema;
    const paths = keyPaths(schema);
    expect(paths.length).toBeGreaterThan(10);
    for (const path of paths) expect(readme, path).toContain(`| \`${path}\``);
    const host = (schema.properties?.plugins as { additionalProperties: Schema }).additionalProperties;
    for (const key of Object.keys(host.properties ?? {})) expect(readme, key).toContain(`| \`plugins.<name>.${key}\``);
  });

  it('gives the two quick-start commands', async () => {
    const readme = await readFile(`${repo}README.md`, 'utf8');
    expect(readme).toMatch(/^npm start\s+# /m);
    expect(readme).toMatch(/^npm test\s+# /m);
    const pkg = JSON.parse(await readFile(`${repo}package.json`, 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe('node tools/quickstart.mjs');
    const quickstart = await readFile(`${repo}tools/quickstart.mjs`, 'utf8');
    expect(quickstart).toContain("'lab', 'up'");
    expect(pkg.scripts.agent).toContain('weft.js run --config config/examples/single-node.yaml');
    expect(pkg.scripts.test).toContain('vitest run');
  });
});
