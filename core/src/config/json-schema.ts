import { z } from 'zod';
import { HOST_KEYS, type PluginDefinition } from '../api/plugin.js';
import { CoreConfigSchema, PluginHostSection } from './schema.js';

type JsonSchema = Record<string, unknown> & { properties?: Record<string, JsonSchema>; required?: string[] };

function toJson(schema: z.ZodType): JsonSchema {
  const out = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete out.$schema;
  return out;
}

/**
 * The JSON Schema of a whole weft.yaml, for editors (yaml-language-server): the core sections, one entry per
 * given plugin (its own schema plus the host keys), and any other key as a third-party plugin with `module:`.
 */
export function configJsonSchema(plugins: readonly PluginDefinition[]): JsonSchema {
  const root = toJson(CoreConfigSchema);
  const host = toJson(PluginHostSection);
  const hostProps = host.properties ?? {};
  const pluginProps: Record<string, JsonSchema> = {};
  for (const plugin of [...plugins].sort((a, b) => a.name.localeCompare(b.name))) {
    const own = toJson(plugin.config);
    pluginProps[plugin.name] = {
      ...own,
      description: plugin.description,
      type: ['object', 'null'],
      properties: { ...(own.properties ?? {}), ...Object.fromEntries(HOST_KEYS.map((k) => [k, hostProps[k] as JsonSchema])) },
    };
  }
  const properties = root.properties as Record<string, JsonSchema>;
  properties.plugins = {
    type: 'object',
    description: 'Each key enables a plugin: a built-in name, or any name with module: for a third-party plugin',
    properties: pluginProps,
    propertyNames: { pattern: '^[a-z][a-z0-9-]{0,39}$' },
    additionalProperties: {
      type: 'object',
      description: 'a third-party plugin: module names its npm package or path; its other keys are its own',
      required: ['module'],
      properties: hostProps,
    },
  };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://weft.io/schemas/weft.schema.json',
    title: 'weft agent configuration (weft.yaml)',
    ...root,
  };
}
