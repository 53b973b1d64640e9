import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { listNetns, PodNetnsFinder } from '../packages/service-tunnels/src/netns.js';
import { freshNetns, netnsSkipReason, skipNote } from './support/capabilities.js';

// The pod-netns lookup on this machine's kernel: a named namespace no process holds (the lab's pods, ip netns), one
// only a process holds (a container runtime's pod), one held both ways; found by address, whatever made it.
const skip = await netnsSkipReason();

const readNamed = async (name: string) => {
  const r = await execa('ip', ['-n', name, '-j', 'address', 'show'], { reject: false });
  if (r.exitCode !== 0) return [];
  return (JSON.parse(r.stdout || '[]') as { addr_info?: { local: string }[] }[]).flatMap((l) => (l.addr_info ?? []).map((a) => a.local));
};
const withAddress = async (enter: string[], address: string) => {
  for (const args of [['link', 'add', 'p0', 'type', 'bridge'], ['address', 'add', address, 'dev', 'p0'], ['link', 'set', 'p0', 'up']]) await execa(enter[0] as string, [...enter.slice(1), 'ip', ...args]);
};

describe.skipIf(skip)(`finding a pod's network namespace by its IP${skipNote(skip)}`, () => {
  it('finds a named namespace, a process-held one and one held both ways (once); a re-made pod is found again; a contested address is not answered', async () => {
    const named = await freshNetns('stn');
    const both = await freshNetns('stb');
    const holder = spawn('unshare', ['--net', 'sleep', '120'], { stdio: 'ignore' });
    const sleeper = spawn('ip', ['netns', 'exec', both.name, 'sleep', '120'], { stdio: 'ignore' });
    try {
      await withAddress(['ip', 'netns', 'exec', named.name], '198.19.60.10/24');
      await withAddress(['ip', 'netns', 'exec', both.name], '198.19.61.10/24');
      await new Promise((r) => setTimeout(r, 300)); // unshare has made its namespace
      await withAddress(['nsenter', `--net=/proc/${String(holder.pid)}/ns/net`], '198.19.62.10/24');

      const all = await listNetns();
      const bothId = all.find((n) => n.path === `/run/netns/${both.name}` || n.pid === sleeper.pid);
      expect(all.filter((n) => n.id === bothId?.id)).toHaveLength(1);

      const finder = new PodNetnsFinder(readNamed);
      expect((await finder.find('198.19.60.10'))?.path).toBe(`/run/netns/${named.name}`);
      expect((await finder.find('198.19.62.10'))?.pid).toBe(holder.pid);
      expect((await finder.find('198.19.61.10'))?.id).toBe(bothId?.id);
      const scans = finder.scans;
      expect((await finder.find('198.19.62.10'))?.pid).toBe(holder.pid);
      expect(finder.scans).toBe(scans); // remembered, checked, no scan
      expect(await finder.find('198.19.63.10')).toBeUndefined();

      // The pod re-made with the same IP: another namespace, found again.
      const before = await finder.find('198.19.60.10');
      await execa('ip', ['netns', 'del', named.name]);
      await execa('ip', ['netns', 'add', named.name]);
      await withAddress(['ip', 'netns', 'exec', named.name], '198.19.60.10/24');
      const after = await finder.find('198.19.60.10');
      expect(after?.path).toBe(`/run/netns/${named.name}`);
      expect(after?.id).not.toBe(before?.id);

      // A second namespace puts another pod's address on itself: the pod found before keeps it (checked, still
      // there); a lookup that has to scan finds two holders and answers neither.
      await execa('ip', ['netns', 'exec', both.name, 'ip', 'address', 'add', '198.19.62.10/32', 'dev', 'p0']);
      expect((await finder.find('198.19.62.10'))?.pid).toBe(holder.pid);
      const fresh = new PodNetnsFinder(readNamed);
      expect(await fresh.find('198.19.62.10')).toBeUndefined();
      expect(fresh.contestedBy('198.19.62.10').map((n) => n.id).sort()).toEqual([bothId?.id, (await finder.find('198.19.62.10'))?.id].sort());
    } finally {
      holder.kill('SIGKILL');
      sleeper.kill('SIGKILL');
      await named.remove();
      await both.remove();
    }
  });
});
