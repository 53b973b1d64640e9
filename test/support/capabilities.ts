import { execa } from 'execa';

/**
 * Why tests that need root and network namespaces cannot run here, or undefined when they can. With
 * WEFT_E2E_REQUIRED=1 (CI sets it) a missing capability is an error rather than a skip, so CI cannot pass by
 * skipping.
 */
export async function netnsSkipReason(): Promise<string | undefined> {
  let reason: string | undefined;
  if (process.getuid?.() !== 0) reason = `needs root (uid 0), running as uid ${process.getuid?.() ?? '?'}`;
  else {
    const probe = `weft-cap-${process.pid}`;
    const add = await execa('ip', ['netns', 'add', probe], { reject: false });
    if (add.exitCode !== 0) reason = `cannot create a network namespace: ${add.stderr || add.shortMessage}`;
    await execa('ip', ['netns', 'del', probe], { reject: false });
  }
  if (reason && process.env.WEFT_E2E_REQUIRED === '1') throw new Error(`WEFT_E2E_REQUIRED=1 but ${reason}`);
  return reason;
}

/** A fresh, uniquely named network namespace with `lo` up; `remove()` deletes it (and every link in it). */
export async function freshNetns(label: string): Promise<{ name: string; remove(): Promise<void> }> {
  const name = `weft-${label}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
  await execa('ip', ['netns', 'add', name]);
  await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return {
    name,
    remove: async () => {
      // Delete the links first: a wireguard-go device keeps its process, and with it the namespace, alive.
      const links = await execa('ip', ['-n', name, '-j', 'link', 'show'], { reject: false });
      const names = links.exitCode === 0 ? (JSON.parse(links.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname).filter((n) => n !== 'lo') : [];
      for (const link of names) await execa('ip', ['-n', name, 'link', 'del', link], { reject: false });
      await execa('ip', ['netns', 'del', name], { reject: false });
    },
  };
}

/**
 * Why the VM suite cannot run here, or undefined when it can: it needs root, qemu-system-x86_64, a Debian kernel
 * image under /boot and a static busybox (see tools/vm/README.md). WEFT_E2E_REQUIRED=1 turns a skip into an error.
 */
export async function vmSkipReason(): Promise<string | undefined> {
  const { readdir } = await import('node:fs/promises');
  let reason: string | undefined;
  const has = async (cmd: string) => (await execa('sh', ['-c', 'command -v "$0"', cmd], { reject: false })).exitCode === 0;
  if (process.getuid?.() !== 0) reason = 'needs root';
  else if (!(await has('qemu-system-x86_64'))) reason = 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)';
  else if (!(await readdir('/boot').catch(() => [])).some((f) => f.startsWith('vmlinuz-'))) reason = 'no kernel image in /boot (apt-get install linux-image-6.12-amd64)';
  else if (!(await has('busybox')) && !process.env.VM_RUN_BUSYBOX) reason = 'no static busybox (apt-get install busybox-static)';
  if (reason && process.env.WEFT_E2E_REQUIRED === '1') throw new Error(`WEFT_E2E_REQUIRED=1 but the VM suite cannot run: ${reason}`);
  return reason;
}
