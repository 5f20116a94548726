/**
 * Where the public test data lives: `<package root>/../shared/data` (see its README). A user's
 * clone has no such folder, so tests that need it skip with a message. KFAC_PEFT_DATA points
 * elsewhere when the package is checked out away from the shared folder.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const PACKAGE_ROOT = resolve(import.meta.dirname, '..');
export const SHARED_DATA = process.env['KFAC_PEFT_DATA'] ?? join(PACKAGE_ROOT, '..', 'shared', 'data');

/** The path of `rel` inside the shared data, or undefined (with a note on stderr) when absent. */
export function sharedData(rel: string): string | undefined {
  const p = join(SHARED_DATA, rel);
  if (existsSync(p)) return p;
  process.stderr.write(`skipping tests that need ${p}: the shared data folder is absent (set KFAC_PEFT_DATA to its location)\n`);
  return undefined;
}
