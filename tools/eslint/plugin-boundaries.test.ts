import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint, RuleTester } from 'eslint';
import { describe, expect, it } from 'vitest';
import { pluginBoundaries } from './plugin-boundaries.js';

RuleTester.describe = describe;
RuleTester.it = it;

const repo = fileURLToPath(new URL('../../', import.meta.url));
const inPlugin = (path: string) => join(repo, 'plugins/wireguard', path);
const tester = new RuleTester({ languageOptions: { ecmaVersion: 'latest', sourceType: 'module' } });

tester.run('plugin-boundaries', pluginBoundaries, {
  valid: [
    { filename: inPlugin('src/index.ts'), code: "import { definePlugin } from '@weft/core';" },
    { filename: inPlugin('src/index.ts'), code: "import { planMesh } from './topology.js'; export * from './keys.js';" },
    { filename: inPlugin('src/sub/a.ts'), code: "import { x } from '../b.js';" },
    { filename: inPlugin('src/index.ts'), code: "import { readFile } from 'node:fs/promises'; import os from 'os';" },
    { filename: inPlugin('src/topology.test.ts'), code: "import { startTestAgent } from '@weft/core/testing'; import { it } from 'vitest';" },
    { filename: inPlugin('src/mesh.e2e.test.ts'), code: "import { Lab } from '@weft/core/lab';" },
    { filename: join(repo, 'core/src/x.ts'), code: "import { Agent } from '../runtime/agent.js';" },
  ],
  invalid: [
    { filename: inPlugin('src/index.ts'), code: "import { Agent } from '@weft/core/dist/runtime/agent.js';", errors: [{ messageId: 'coreInternal' }] },
    { filename: inPlugin('src/index.ts'), code: "import { z } from '../../../core/src/api/schema.js';", errors: [{ messageId: 'outside' }] },
    { filename: inPlugin('src/index.ts'), code: "import vx from '@weft/plugin-vxlan';", errors: [{ messageId: 'otherPlugin' }] },
    { filename: inPlugin('src/index.ts'), code: "const m = await import('../../keepalive/src/index.js');", errors: [{ messageId: 'outside' }] },
    { filename: inPlugin('src/index.ts'), code: "import { startTestAgent } from '@weft/core/testing';", errors: [{ messageId: 'testingInProduction' }] },
    { filename: inPlugin('src/index.ts'), code: "import { Lab } from '@weft/core/lab';", errors: [{ messageId: 'testingInProduction' }] },
    { filename: inPlugin('src/index.ts'), code: "import left from 'left-pad';", errors: [{ messageId: 'undeclared' }] },
  ],
});

describe('the repository lint config', () => {
  it('flags a floating promise', async () => {
    const eslint = new ESLint({ cwd: repo, ignore: false });
    const [result] = await eslint.lintFiles([join(repo, 'tools/eslint/fixtures/floating-promise.ts')]);
    expect(result?.messages.map((m) => [m.ruleId, m.line])).toEqual([['@typescript-eslint/no-floating-promises', 5]]);
  }, 60_000);
});
