import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../core/src/config/json-schema.js';
import { packagesOf, QUICKSTART_GROUPS } from '../tools/programs.mjs';
import { filesUnder } from './support/program-scan.js';

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

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

function anchorsOf(markdown: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.+)$/.exec(line);
    if (m) out.add(slug(m[1] as string));
  }
  return out;
}

describe('the docs stand alone in the repository', () => {
  const markdown = ['README.md', ...['docs', 'plugins', 'examples', 'tools', 'core', 'config', 'manifests'].flatMap((d) => filesUnder(repo, d, /\.md$/))];

  it('every relative link points at a file of the repository, and every anchor at a heading', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const file of markdown) {
      const text = readFileSync(join(repo, file), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1] as string;
        if (/^[a-z]+:/.test(link)) continue;
        checked += 1;
        const [path, anchor] = link.split('#') as [string, string | undefined];
        const target = path === '' ? join(repo, file) : join(repo, dirname(file), path);
        const inside = relative(repo, target);
        if (inside.startsWith('..')) broken.push(`${file}: ${link} leaves the repository`);
        else if (!existsSync(target)) broken.push(`${file}: ${link} does not exist`);
        else if (anchor && target.endsWith('.md') && !anchorsOf(readFileSync(target, 'utf8')).has(anchor)) broken.push(`${file}: ${link} names no heading`);
      }
    }
    expect(markdown.length).toBeGreaterThan(8);
    expect(checked).toBeGreaterThan(20);
    expect(broken).toEqual([]);
  });

  it('nothing refers to files outside the repository (../shared)', () => {
    const code = ['core/src', 'plugins', 'examples', 'test', 'tools', 'bench'].flatMap((d) => filesUnder(repo, d, /\.(ts|mts|mjs|js|md)$/));
    const outside = [...new Set([...markdown, ...code])].filter((f) => f !== 'test/docs.test.ts' && readFileSync(join(repo, f), 'utf8').includes('../shared'));
    expect(outside).toEqual([]);
  });

  it('the quick start names the packages npm start installs', async () => {
    const readme = await readFile(`${repo}README.md`, 'utf8');
    const quickStart = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('## The CLI'));
    for (const pkg of packagesOf(QUICKSTART_GROUPS)) expect(quickStart, pkg).toContain(`\`${pkg}\``);
  });
});
