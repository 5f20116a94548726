/**
 * The file readers under mutated input (test/fuzz/): a fixed budget of seeded mutations of valid
 * files per reader, each read in a child process with a time limit and a peak-memory cap, must
 * end in success or a typed KfacError; the minimised inputs of past findings (test/fixtures/fuzz/,
 * written by `npm run fuzz -- --save DIR`) stay fixed.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

// @ts-expect-error -- plain ESM helper without types
import { runFuzz, runSaved, TARGET_NAMES } from './fuzz.mjs';

interface Result {
  status: string;
  name?: string;
  code?: string;
  message?: string;
}
interface Finding extends Result {
  target: string;
  repro: string;
}

/** Inputs per reader in CI (10 readers; docs/ROBUSTNESS.md gives the time this takes). */
const CASES_PER_TARGET = 400;

describe('reader fuzzing', () => {
  it(`${CASES_PER_TARGET} mutated inputs per reader end in success or a typed error (seed 1)`, async () => {
    const { counts, findings } = (await runFuzz({ seed: 1, cases: CASES_PER_TARGET, timeoutMs: 10_000 })) as {
      counts: Record<string, { ok: number; typed: number; failed: number }>;
      findings: Finding[];
    };
    const report = findings.map((f) => `${f.target}: ${f.status} ${f.name}: ${f.message}\n  ${f.repro}`).join('\n');
    expect(report).toBe('');
    expect(Object.keys(counts).sort()).toEqual([...TARGET_NAMES].sort());
    for (const [t, c] of Object.entries(counts)) {
      expect(c.ok + c.typed, t).toBe(CASES_PER_TARGET);
      // The mutations must reach both outcomes: a fuzzer whose inputs all fail (or all pass) tests little.
      expect(c.typed, t).toBeGreaterThan(CASES_PER_TARGET / 4);
      expect(c.ok, t).toBeGreaterThan(0);
    }
  });

  it('the minimised inputs of past findings end in the typed error they now give', async () => {
    const root = join(import.meta.dirname, '..', 'fixtures', 'fuzz');
    const dirs = readdirSync(root).sort().map((d) => join(root, d));
    const results = (await runSaved(dirs, 10_000)) as { dir: string; meta: { expect: Result }; result: Result }[];
    for (const r of results) expect({ dir: r.dir, status: r.result.status, code: r.result.code }).toEqual({ dir: r.dir, ...r.meta.expect });
  });
});
