/**
 * Where the public test data lives: `<package root>/../shared/data` (see its README), or the
 * folder KFAC_PEFT_DATA names when the package is checked out away from the shared folder. Every
 * test that reads that data gets its path here; none builds the path itself. A user's clone has
 * no such folder, so those tests skip, and say why: a line on stderr when the path is looked up,
 * and the reason in the skipped suite's title (see skipNote).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const PACKAGE_ROOT = resolve(import.meta.dirname, '..', '..');

/** The shared data folder: KFAC_PEFT_DATA when set (and non-empty), else ../shared/data. */
export function sharedDataRoot(env: NodeJS.ProcessEnv = process.env): string {
  const v = env['KFAC_PEFT_DATA'];
  return v !== undefined && v !== '' ? resolve(v) : join(PACKAGE_ROOT, '..', 'shared', 'data');
}

export const SHARED_DATA = sharedDataRoot();

/** The path of `rel` inside the shared data, or undefined (with a note on stderr) when absent. */
export function sharedData(rel: string): string | undefined {
  const p = join(SHARED_DATA, rel);
  if (existsSync(p)) return p;
  process.stderr.write(`skipping tests that need ${p}: not found (set KFAC_PEFT_DATA to the shared data folder)\n`);
  return undefined;
}

/**
 * A suffix for the title of a suite that needs `rel`: empty when `path` (from sharedData) was
 * found, else " (skipped: no <folder>/<rel>; set KFAC_PEFT_DATA)" so the skip names its reason in
 * every reporter.
 */
export function skipNote(path: string | undefined, rel: string): string {
  return path === undefined ? ` (skipped: no ${join(SHARED_DATA, rel)}; set KFAC_PEFT_DATA to the shared data folder)` : '';
}
