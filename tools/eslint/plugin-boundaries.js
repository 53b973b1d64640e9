// @ts-check
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';

/** The package directory (holding package.json) of a file under plugins/<name>/, examples/<name>/ or packages/<name>/. */
function packageDirOf(file) {
  const parts = file.split(sep);
  const i = parts.findLastIndex((p) => p === 'plugins' || p === 'examples' || p === 'packages');
  return i >= 0 && parts.length > i + 2 ? parts.slice(0, i + 2).join(sep) : undefined;
}

function dependenciesOf(packageDir) {
  try {
    const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8'));
    return new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
  } catch {
    return new Set();
  }
}

const BUILTINS = new Set(builtinModules);
const isTestFile = (file) => /\.(e2e\.)?test\.[cm]?[jt]s$/.test(file) || file.includes(`${sep}test${sep}`);

/**
 * A plugin imports only `@weft/core` (its public entry; `@weft/core/testing` and `@weft/core/lab` in tests), Node's built-ins, packages
 * it declares itself, and its own files. Never another plugin, never core internals.
 * @type {import('eslint').Rule.RuleModule}
 */
export const pluginBoundaries = {
  meta: {
    type: 'problem',
    docs: { description: "keep a plugin to @weft/core's public API and its own files" },
    messages: {
      coreInternal: "'{{source}}' reaches into @weft/core's internals; import from '@weft/core' (or '@weft/core/testing' in tests)",
      otherPlugin: "'{{source}}' is another plugin; plugins never import each other (share through annotations or @weft/core)",
      outside: "'{{source}}' leaves this plugin's package; import only its own files and @weft/core",
      undeclared: "'{{source}}' is not a dependency of this plugin; declare it in its package.json",
      testingInProduction: "'{{source}}' is for tests only",
    },
    schema: [],
  },
  create(context) {
    const file = context.filename;
    const packageDir = packageDirOf(file);
    if (!packageDir) return {};
    const deps = dependenciesOf(packageDir);
    const check = (node, source) => {
      if (typeof source !== 'string') return;
      if (source.startsWith('.')) {
        const target = resolve(dirname(file), source);
        const rel = relative(packageDir, target);
        if (rel.startsWith('..') || rel === '' ) context.report({ node, messageId: 'outside', data: { source } });
        return;
      }
      if (source.startsWith('node:') || BUILTINS.has(source)) return;
      if (source === '@weft/core') return;
      if (source === '@weft/core/testing' || source === '@weft/core/lab') {
        if (!isTestFile(file)) context.report({ node, messageId: 'testingInProduction', data: { source } });
        return;
      }
      if (source.startsWith('@weft/core/')) return context.report({ node, messageId: 'coreInternal', data: { source } });
      if (source.startsWith('@weft/plugin-') || source.startsWith('@weft-examples/')) {
        return context.report({ node, messageId: 'otherPlugin', data: { source } });
      }
      const name = source.startsWith('@') ? source.split('/').slice(0, 2).join('/') : source.split('/')[0];
      if (!deps.has(name) && !(isTestFile(file) && name === 'vitest')) context.report({ node, messageId: 'undeclared', data: { source } });
    };
    return {
      ImportDeclaration: (node) => check(node.source, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node.source, node.source.value),
      ExportAllDeclaration: (node) => check(node.source, node.source.value),
      ImportExpression: (node) => node.source.type === 'Literal' && check(node.source, node.source.value),
    };
  },
};

export default { rules: { 'plugin-boundaries': pluginBoundaries } };
