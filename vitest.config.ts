import { defineConfig } from 'vitest/config';

const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  throw new Error(`weft's tests need Node >= 24, got ${process.version} (${process.execPath}); run them with npm test or npx vitest`);
}

// The VM suite (*.vm.test.ts) runs only inside the VM that test/vm.e2e.test.ts boots.
const inVm = process.env.WEFT_IN_VM === '1';

export default defineConfig({
  resolve: { conditions: ['weft-source'] },
  ssr: { resolve: { conditions: ['weft-source'], externalConditions: ['weft-source'] } },
  test: {
    setupFiles: ['./test/setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['core/src/**/*.test.ts', 'packages/*/src/**/*.test.ts', 'plugins/*/src/**/*.test.ts', 'examples/*/src/**/*.test.ts', 'distribution/src/**/*.test.ts', 'tools/**/*.test.ts', 'test/**/*.test.ts'], exclude: ['**/*.e2e.test.ts', '**/*.vm.test.ts', '**/node_modules/**'] },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['core/src/**/*.e2e.test.ts', 'packages/*/src/**/*.e2e.test.ts', 'plugins/*/src/**/*.e2e.test.ts', 'test/**/*.e2e.test.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      ...(inVm
        ? [{ extends: true, test: { name: 'vm', include: ['core/src/**/*.vm.test.ts', 'test/**/*.vm.test.ts'], fileParallelism: false, testTimeout: 300_000, hookTimeout: 300_000 } }]
        : []),
    ],
  },
});
