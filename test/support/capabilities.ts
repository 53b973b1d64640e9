import { readdir } from 'node:fs/promises';
import { execa } from 'execa';
import { describeMissing, missingPrograms } from '../../tools/programs.mjs';

/** CI sets WEFT_E2E_REQUIRED=1: a missing capability is then an error rather than a skip, so CI cannot pass by skipping. */
export const E2E_REQUIRED = process.env.WEFT_E2E_REQUIRED === '1';

/**
 * What a skipped suite or test appends to its name: ` (SKIPPED: reason)`, or '' when it runs. The summary reporter
 * (test/support/summary-reporter.ts) collects these into the closing line that says what did not run.
 */
export function skipNote(reason: string | undefined): string {
  return reason ? ` (SKIPPED: ${reason})` : '';
}

/** Returns the reason, or throws it when WEFT_E2E_REQUIRED=1. */
function skipOrFail(reason: string | undefined, what: string): string | undefined {
  if (reason && E2E_REQUIRED) throw new Error(`WEFT_E2E_REQUIRED=1 but ${what} cannot run: ${reason}`);
  return reason;
}

/**
 * Why a test that runs the programs of these groups (tools/programs.mjs) cannot run here — each missing program with
 * its Debian package, or the missing root when `root` is asked for — or undefined when it can. With
 * WEFT_E2E_REQUIRED=1 that is an error.
 */
export function programsSkipReason(groups: readonly string[], what: string, options: { root?: boolean } = {}): string | undefined {
  if (options.root && process.getuid?.() !== 0) return skipOrFail(`needs root (uid 0), running as uid ${String(process.getuid?.() ?? '?')}`, what);
  const missing = missingPrograms(groups);
  return skipOrFail(missing.length > 0 ? describeMissing(missing) : undefined, what);
}

/**
 * Why tests that need root, network namespaces and the programs the lab and the end-to-end tests run cannot run here,
 * or undefined when they can. With WEFT_E2E_REQUIRED=1 a missing capability is an error rather than a skip.
 */
export async function netnsSkipReason(): Promise<string | undefined> {
  let reason: string | undefined;
  if (process.getuid?.() !== 0) reason = `needs root (uid 0), running as uid ${process.getuid?.() ?? '?'}`;
  else {
    const missing = missingPrograms(['agent', 'lab', 'try', 'e2e']);
    if (missing.length > 0) reason = describeMissing(missing);
    else {
      const probe = `weft-cap-${process.pid}`;
      const add = await execa('ip', ['netns', 'add', probe], { reject: false });
      if (add.exitCode !== 0) reason = `cannot create a network namespace: ${add.stderr || add.shortMessage}`;
      await execa('ip', ['netns', 'del', probe], { reject: false });
    }
  }
  return skipOrFail(reason, 'the end-to-end tests');
}

/** A fresh, uniquely named network namespace with `lo` up and IPv4 forwarding off; `remove()` deletes it (and every link in it). */
export async function freshNetns(label: string): Promise<{ name: string; remove(): Promise<void> }> {
  const name = `weft-${label}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
  await execa('ip', ['netns', 'add', name]);
  await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  // A new namespace takes IPv4 forwarding from the machine's own (net.core.devconf_inherit_init_net = 0): start from
  // the kernel's default whatever this machine has, so that a test's "turns forwarding on" is seen as a change.
  await execa('ip', ['netns', 'exec', name, 'sysctl', '-qw', 'net.ipv4.ip_forward=0']);
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
 * Why the VM suite cannot run here, or undefined when it can: it needs root, the programs of tools/vm/vm-run
 * (qemu-system-x86_64, a static busybox, …) and a Debian kernel image under /boot (see tools/vm/README.md).
 * WEFT_E2E_REQUIRED=1 turns a skip into an error.
 */
export async function vmSkipReason(): Promise<string | undefined> {
  let reason: string | undefined;
  const missing = missingPrograms(['vm']).filter((m) => !(m.program === 'busybox' && process.env.VM_RUN_BUSYBOX));
  if (process.getuid?.() !== 0) reason = 'needs root';
  else if (missing.length > 0) reason = describeMissing(missing);
  else if (!(await readdir('/boot').catch(() => [])).some((f) => f.startsWith('vmlinuz-'))) reason = 'no kernel image in /boot: apt-get install linux-image-6.12-amd64';
  return skipOrFail(reason, 'the VM suite');
}
