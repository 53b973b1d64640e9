import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { AGENT_NODE_FLAGS } from '../core/src/lab/lab.js';

// Node's built-in modules ship with compiled code that V8 takes only under the flags it was made with; a flag in V8's
// flag hash (--max-opt, --max-lazy, --single-threaded, …) makes every agent start compile each built-in module it
// loads from source. `--profile-deserialization` prints a line for each piece of cached code V8 takes.
const taken = async (flags: readonly string[]): Promise<number> => {
  const r = await execa(process.execPath, ['--profile-deserialization', ...flags, '-e', "require('node:http'); require('node:child_process'); require('node:dgram')"]);
  return `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.startsWith('[Deserializing')).length;
};

describe("the agent's Node flags", () => {
  it("leave Node's compiled built-in modules usable", async () => {
    const plain = await taken([]);
    // Node's own snapshot is three lines; the built-in modules add dozens.
    expect(plain).toBeGreaterThan(20);
    expect(await taken(AGENT_NODE_FLAGS)).toBe(plain);
    // The check can fail: a flag in the hash throws the built-in modules' code away.
    expect(await taken([...AGENT_NODE_FLAGS, '--max-lazy'])).toBeLessThan(plain);
  });
});
