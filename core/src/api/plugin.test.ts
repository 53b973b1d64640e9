import { describe, expect, it } from 'vitest';
import { definePlugin, isPluginDefinition, type PluginDeclaration } from './plugin.js';
import { z } from './schema.js';

const valid: PluginDeclaration<z.ZodType> = {
  name: 'ok',
  apiVersion: '2',
  description: 'fine',
  config: z.strictObject({}),
  setup: () => ({ reconcile: async () => undefined }),
};

describe('definePlugin', () => {
  it('returns a frozen, branded definition that always watches nodes', () => {
    const p = definePlugin({ ...valid, watches: ['services'] });
    expect(isPluginDefinition(p)).toBe(true);
    expect(Object.isFrozen(p)).toBe(true);
    expect(p.watches).toEqual(['nodes', 'services']);
    expect(isPluginDefinition({ ...valid })).toBe(false);
  });

  it.each([
    ['a bad name', { name: 'Bad Name' }, /name must match/],
    ['an empty API version', { apiVersion: '' }, /apiVersion must be a string/],
    ['no description', { description: ' ' }, /description is required/],
    ['no setup', { setup: undefined }, /setup must be a function/],
    ['a config that is no schema', { config: { port: 1 } }, /config must be a schema/],
    ['an unknown watch', { watches: ['pods'] }, /unknown watch "pods"/],
  ])('throws at once on %s', (_what, patch, message) => {
    expect(() => definePlugin({ ...valid, ...(patch as object) })).toThrow(message);
  });
});
