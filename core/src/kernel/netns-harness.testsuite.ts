/** The contract harness for iproute2 in a fresh network namespace: on this machine (e2e) and in the VM. */
import { execa } from 'execa';
import { freshNetns } from '../../../test/support/capabilities.js';
import type { ContractHarness } from './contract.testsuite.js';
import { Iproute2Kernel, type Runner, type WireGuardImplementation } from './iproute2.js';

/** A runner that counts the processes the driver starts and keeps their command lines. */
export function countingRunner(): { runner: Runner; count: () => number; lines: () => string[] } {
  const lines: string[] = [];
  return {
    count: () => lines.length,
    lines: () => lines,
    runner: async (file, args, input) => {
      lines.push([file, ...args].join(' '));
      const r = await execa(file, args, { input, reject: false, stripFinalNewline: true });
      return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? 1 };
    },
  };
}

/** iproute2 bound to a fresh namespace, with a bridge, an address, a route and a rule of another daemon's in it. */
export async function netnsHarness(label: string, options: { wireguard?: WireGuardImplementation } = {}): Promise<ContractHarness> {
  const ns = await freshNetns(label);
  const counting = countingRunner();
  const ip = (...args: string[]) => execa('ip', ['-n', ns.name, ...args]);
  return {
    backend: new Iproute2Kernel({ kind: 'named', name: ns.name }, { runner: counting.runner, ...options }),
    async addForeign() {
      await ip('link', 'add', 'fx0', 'type', 'bridge');
      await ip('link', 'set', 'fx0', 'up');
      await ip('address', 'add', '198.51.100.1/24', 'dev', 'fx0');
      await ip('route', 'add', '198.51.100.128/25', 'dev', 'fx0', 'proto', 'static');
      await ip('rule', 'add', 'priority', '900', 'table', '99');
    },
    async foreignIntact() {
      const links = (await ip('-j', 'link', 'show', 'fx0')).stdout;
      const addrs = (await ip('-j', 'address', 'show', 'dev', 'fx0')).stdout;
      const routes = (await ip('-j', 'route', 'show', '198.51.100.128/25', 'proto', 'static')).stdout;
      const rules = (await ip('-j', 'rule', 'show', 'priority', '900')).stdout;
      return links.includes('"fx0"') && addrs.includes('198.51.100.1') && routes.includes('198.51.100.128/25') && rules.includes('"priority":900');
    },
    commands: counting.count,
    commandLines: counting.lines,
    close: () => ns.remove(),
  };
}
