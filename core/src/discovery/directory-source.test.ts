import { mkdir, mkdtemp, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ClusterView } from '../api/cluster.js';
import { CoreConfigSchema } from '../config/schema.js';
import { createLogger } from '../observe/logger.js';
import { DirectoryNodeSource } from './directory-source.js';
import { until } from '../../../test/support/until.js';

let dir: string;
const sources: DirectoryNodeSource[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weft-dir-'));
});
afterEach(async () => {
  for (const s of sources.splice(0)) await s.stop();
  await rm(dir, { recursive: true, force: true });
});

function settings(self: object = {}, rescan = '200ms') {
  return CoreConfigSchema.parse({ discovery: { source: 'directory', directory: { path: dir, rescan, self } } }).discovery.directory;
}

async function agent(name: string, self: object = {}, options: { watch?: boolean; rescan?: string; firstSeenFile?: string } = {}) {
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', format: 'json' }, new Writable({ write: (c: Buffer, _e, d) => (logs.push(JSON.parse(c.toString()) as Record<string, unknown>), d()) }));
  const views: ClusterView[] = [];
  const source = new DirectoryNodeSource(name, settings(self, options.rescan), logger, options);
  sources.push(source);
  await source.start(new Set(['nodes', 'services']), (v) => views.push(v));
  return { source, views, logs };
}


const names = (s: DirectoryNodeSource) => s.current().nodes.map((n) => n.name);

describe('DirectoryNodeSource', () => {
  it('writes its own document, sees the others, and their published annotations', async () => {
    const a = await agent('n1', { internalAddresses: ['192.0.2.1'], podCIDRs: ['198.18.1.0/24'], labels: { 'topology.kubernetes.io/region': 'lab-a' } });
    const b = await agent('n2', { internalAddresses: ['192.0.2.2'] });
    await until('n1 sees n2', () => names(a.source).includes('n2'));
    expect(a.source.synced()).toBe(true);
    expect(b.source.current().nodes.find((n) => n.name === 'n1')).toMatchObject({ internalAddresses: ['192.0.2.1'], podCIDRs: ['198.18.1.0/24'], location: 'lab-a', ready: true });
    await a.source.publish({ 'weft.io/wireguard-public-key': 'k1' });
    await until('n2 sees the key', () => b.source.current().nodes.find((n) => n.name === 'n1')?.annotations['weft.io/wireguard-public-key'] === 'k1');
    expect(a.source.current().self.annotations).toEqual({ 'weft.io/wireguard-public-key': 'k1' });
  });

  it('skips a malformed document with a line naming file, line and column; the rest keep working', async () => {
    const a = await agent('n1');
    await writeFile(join(dir, 'n3.yaml'), 'name: n3\ninternalAddresses: [192.0.2.3, nope]\n');
    await writeFile(join(dir, 'n4.yaml'), 'name: n4\n');
    await until('n4 seen', () => names(a.source).includes('n4'));
    expect(names(a.source)).toEqual(['n1', 'n4']);
    const line = a.logs.find((l) => l.msg === 'skipping malformed node document n3.yaml; the node is left out');
    expect(line?.problems).toEqual([`${join(dir, 'n3.yaml')}:2:32 internalAddresses[1]: expected an IP address, got "nope"`]);
  });

  it('keeps the last good version of a document that breaks, and drops a node whose document is removed', async () => {
    const a = await agent('n1');
    await writeFile(join(dir, 'n5.yaml'), 'name: n5\ninternalAddresses: [192.0.2.5]\n');
    await until('n5 seen', () => names(a.source).includes('n5'));
    await writeFile(join(dir, 'n5.yaml'), 'name: n5\ninternalAddresses: [192.0.2.5\n');
    await until('the break is logged', () => a.logs.some((l) => l.msg === 'skipping malformed node document n5.yaml; its last good version stays'));
    expect(a.source.current().nodes.find((n) => n.name === 'n5')?.internalAddresses).toEqual(['192.0.2.5']);
    await writeFile(join(dir, 'n6.yaml'), 'name: other\n');
    await until('the mismatch is logged', () => a.logs.some((l) => String(l.msg).includes('n6.yaml')));
    expect((a.logs.find((l) => String(l.msg).includes('n6.yaml'))?.problems as string[])[0]).toMatch(/n6\.yaml:1:7 name: expected "n6" \(the file name\), got "other"/);
    await unlink(join(dir, 'n5.yaml'));
    await until('n5 gone', () => !names(a.source).includes('n5'));
  });

  it('finds changes by its periodic rescan alone', async () => {
    const a = await agent('n1', {}, { watch: false, rescan: '100ms' });
    await writeFile(join(dir, 'n7.yaml'), 'name: n7\n');
    await until('n7 seen by rescan', () => names(a.source).includes('n7'), 2_000);
  });

  it('keeps its own annotations across a restart, and carries services for the tunnel plugins', async () => {
    const first = await agent('n1', { services: [{ name: 'web', externalIPs: ['203.0.113.10'], ports: [{ port: 80 }] }] });
    await first.source.publish({ 'weft.io/vxlan-vtep': '02:00:00:00:00:01' });
    await first.source.stop();
    const again = await agent('n1');
    expect(again.source.current().self.annotations).toEqual({ 'weft.io/vxlan-vtep': '02:00:00:00:00:01' });
    expect(first.source.current().services).toEqual([
      { namespace: 'default', name: 'web', annotations: {}, clusterIPs: [], externalIPs: ['203.0.113.10'], loadBalancerIPs: [], ports: [{ protocol: 'TCP', port: 80 }] },
    ]);
  });

  it("dates each node by when this agent first saw its document, not by anything in it; the dates survive a restart", async () => {
    const firstSeenFile = join(dir, '.state', 'first-seen.json');
    await writeFile(join(dir, 'old.yaml'), 'name: old\n');
    const a = await agent('n1', {}, { firstSeenFile });
    const oldAge = a.source.current().nodes.find((n) => n.name === 'old')?.createdAt as number;
    expect(oldAge).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 20));
    // A document that appears later is newer, whatever it says about itself.
    await writeFile(join(dir, 'a-new.yaml'), 'name: a-new\nannotations: { "weft.io/created": "0" }\n');
    await until('a-new seen', () => names(a.source).includes('a-new'));
    const newAge = a.source.current().nodes.find((n) => n.name === 'a-new')?.createdAt as number;
    expect(newAge).toBeGreaterThan(oldAge);
    await a.source.stop();
    // Restarted: the same ages; a node whose document went is forgotten, and is new when it comes back.
    await unlink(join(dir, 'a-new.yaml'));
    const b = await agent('n1', {}, { firstSeenFile });
    expect(b.source.current().nodes.find((n) => n.name === 'old')?.createdAt).toBe(oldAge);
    await b.source.stop();
    await writeFile(join(dir, 'a-new.yaml'), 'name: a-new\n');
    const c = await agent('n1', {}, { firstSeenFile });
    expect(c.source.current().nodes.find((n) => n.name === 'a-new')?.createdAt).toBeGreaterThan(newAge);
  });

  it('a wall clock stepped back does not make a newcomer older than the nodes already seen', async () => {
    await writeFile(join(dir, 'old.yaml'), 'name: old\n');
    const a = await agent('n1');
    const oldAge = a.source.current().nodes.find((n) => n.name === 'old')?.createdAt as number;
    vi.useFakeTimers({ toFake: ['Date'], now: oldAge - 3_600_000 });
    try {
      await writeFile(join(dir, 'a-new.yaml'), 'name: a-new\n');
      await until('a-new seen', () => names(a.source).includes('a-new'));
      expect(a.source.current().nodes.find((n) => n.name === 'a-new')?.createdAt).toBeGreaterThanOrEqual(oldAge);
    } finally {
      vi.useRealTimers();
    }
  });

  it('hostile documents (an alias bomb, deep nesting, a huge file, a directory) are each skipped with where; the scan goes on', async () => {
    const a = await agent('n1');
    const bomb = ['name: bomb', 'labels:', '  a: &a x'];
    for (let i = 0; i < 20; i++) bomb.push(`  b${String(i)}: *a`);
    await writeFile(join(dir, 'bomb.yaml'), `${bomb.join('\n')}\n`);
    await writeFile(join(dir, 'deep.yaml'), `name: deep\nlabels: ${'{a: '.repeat(20)}x${'}'.repeat(20)}\n`);
    await writeFile(join(dir, 'huge.yaml'), `name: huge\nlabels: { a: "${'x'.repeat(300 * 1024)}" }\n`);
    await mkdir(join(dir, 'dir.yaml'));
    await writeFile(join(dir, 'n5.yaml'), 'name: n5\n');
    await until('n5 seen', () => names(a.source).includes('n5'));
    expect(names(a.source)).toEqual(['n1', 'n5']);
    const said = (file: string) => a.logs.filter((l) => l.msg === `skipping malformed node document ${file}; the node is left out`).map((l) => l.problems);
    expect(said('bomb.yaml')).toEqual([[`${join(dir, 'bomb.yaml')}:20:8: more than 16 aliases (*name); refused, as an alias can stand for a whole tree`]]);
    expect(said('deep.yaml')).toEqual([[`${join(dir, 'deep.yaml')}:2:69: nested deeper than 16 levels`]]);
    expect(said('huge.yaml')).toEqual([[`${join(dir, 'huge.yaml')}: ${String((await stat(join(dir, 'huge.yaml'))).size)} bytes, more than discovery.directory.maxDocumentBytes (262144)`]]);
    expect(said('dir.yaml')).toEqual([[`${join(dir, 'dir.yaml')}: not a regular file`]]);
  });

  it('reads a document again only when it changed: a bad one is said once per version', async () => {
    const a = await agent('n1', {}, { rescan: '100ms' });
    // Written as agents write theirs (temp file + rename): a reader never sees half a version.
    const put = async (text: string) => {
      await writeFile(join(dir, '.n3.tmp'), text);
      await rename(join(dir, '.n3.tmp'), join(dir, 'n3.yaml'));
    };
    await put('name: n3\ninternalAddresses: [nope]\n');
    await new Promise((r) => setTimeout(r, 600)); // several rescans
    const said = () => a.logs.filter((l) => l.msg === 'skipping malformed node document n3.yaml; the node is left out').length;
    expect(said()).toBe(1);
    await put('name: n3\ninternalAddresses: [still-nope]\n');
    await until('the new version said', () => said() === 2);
    await new Promise((r) => setTimeout(r, 400));
    expect(said()).toBe(2);
  });

  it('stays consistent with several agents writing at once', async () => {
    const agents = await Promise.all(['c1', 'c2', 'c3', 'c4', 'c5'].map((n) => agent(n)));
    await Promise.all(
      agents.map(async (x, i) => {
        for (let round = 0; round < 20; round++) await x.source.publish({ 'weft.io/round': `${i}-${round}` });
      }),
    );
    for (const x of agents) {
      await until('every final value seen', () => agents.every((y, i) => x.source.current().nodes.find((n) => n.name === `c${i + 1}`)?.annotations['weft.io/round'] === `${i}-19`));
      expect(x.logs.filter((l) => String(l.msg).startsWith('skipping malformed'))).toEqual([]);
    }
  });
});
