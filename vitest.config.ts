import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Records the CPU kernels the tests ran and prints them at the end (test/support/isa.ts).
    globalSetup: ['test/support/isa-summary.setup.ts'],
    // Native kernels use every core; files run one after another so timings and
    // thread counts stay predictable on small machines.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
