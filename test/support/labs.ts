import { afterAll } from 'vitest';
import { Lab } from '../../core/src/lab/index.js';

/**
 * Names for the labs of one test file, unique to this process (`<tag><pid>`), each taken down after the file's
 * tests — also when a test failed before its own `down`.
 */
export function labNames(): (tag: string) => string {
  const names: string[] = [];
  afterAll(async () => {
    for (const name of names) await Lab.down(name);
  });
  return (tag) => {
    const name = `${tag}${String(process.pid % 100000)}`;
    names.push(name);
    return name;
  };
}
