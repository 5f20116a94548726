/**
 * The demo's cache folder: where it is, whether what is there is intact and current, and how a
 * new one replaces it without ever leaving a half-written folder.
 *
 * A folder is valid when its manifest.json parses, its `key` equals the expected key (format
 * version, corpus version and every hyperparameter) and every file it lists has the recorded
 * size and SHA-256. A new folder is written next to the old one under a temporary name (each
 * file flushed) and renamed into place; an interrupted build leaves only a temporary folder,
 * which the next build removes.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

import { FileError } from '../errors.js';
import { writeFilesAtomic } from '../util/atomic.js';

export const CACHE_NAME = 'demo-sotu-v1';
export const MANIFEST = 'manifest.json';

/** `$KFAC_PEFT_CACHE`, else `$XDG_CACHE_HOME/kfac-peft`, else `~/.cache/kfac-peft`. */
export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const own = env['KFAC_PEFT_CACHE'];
  if (own) return own;
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg ? xdg : join(homedir(), '.cache'), 'kfac-peft');
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export interface FileRecord {
  readonly bytes: number;
  readonly sha256: string;
}

/** The manifest when the folder is intact and was built for `key`, else null (with the reason). */
export function checkCache(dir: string, key: unknown): { manifest: Record<string, unknown> | null; reason: string } {
  const file = join(dir, MANIFEST);
  if (!existsSync(file)) return { manifest: null, reason: 'no cache yet' };
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return { manifest: null, reason: 'the manifest is unreadable' };
  }
  if (m === null || typeof m !== 'object') return { manifest: null, reason: 'the manifest is not an object' };
  if (JSON.stringify(m['key']) !== JSON.stringify(key)) return { manifest: null, reason: 'built with other settings' };
  const files = m['files'] as Record<string, FileRecord> | undefined;
  if (files === null || typeof files !== 'object' || Object.keys(files).length === 0) return { manifest: null, reason: 'the manifest lists no files' };
  for (const [name, rec] of Object.entries(files)) {
    const p = join(dir, name);
    try {
      if (statSync(p).size !== rec.bytes) return { manifest: null, reason: `${name} has the wrong size` };
      if (sha256(readFileSync(p)) !== rec.sha256) return { manifest: null, reason: `${name} is corrupted` };
    } catch {
      return { manifest: null, reason: `${name} is missing` };
    }
  }
  return { manifest: m, reason: 'intact' };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** Removes temporary folders left by interrupted builds (not those of a build still running). */
function sweep(root: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const n of names) {
    const m = new RegExp(`^\\.${CACHE_NAME}\\.(tmp|old)-(\\d+)-`).exec(n);
    if (m && (Number(m[2]) === process.pid || !alive(Number(m[2])))) rmSync(join(root, n), { recursive: true, force: true });
  }
}

/**
 * Writes `files` (relative paths, at most one folder deep) and a manifest holding `manifest`
 * plus their sizes and hashes into `dir`, replacing what was there as one rename.
 */
export function writeCache(dir: string, files: ReadonlyMap<string, Uint8Array>, manifest: Record<string, unknown>): Record<string, unknown> {
  const root = dirname(dir);
  sweep(root);
  const stamp = `${process.pid}-${Date.now()}`;
  const tmp = join(root, `.${CACHE_NAME}.tmp-${stamp}`);
  const records: Record<string, FileRecord> = {};
  const byFolder = new Map<string, { name: string; bytes: Uint8Array }[]>();
  for (const [rel, bytes] of files) {
    const parts = rel.split('/');
    if (parts.length > 2 || parts.some((p) => p === '' || p === '..')) throw new FileError(rel, 'expected a file name or folder/file');
    const folder = parts.length === 2 ? parts[0]! : '';
    const list = byFolder.get(folder) ?? [];
    list.push({ name: parts.at(-1)!, bytes });
    byFolder.set(folder, list);
    records[rel] = { bytes: bytes.length, sha256: sha256(bytes) };
  }
  const full = { ...manifest, files: records };
  try {
    for (const [folder, list] of byFolder) writeFilesAtomic(join(tmp, folder), list);
    writeFilesAtomic(tmp, [{ name: MANIFEST, bytes: new TextEncoder().encode(`${JSON.stringify(full, null, 2)}\n`) }]);
    const old = join(root, `.${CACHE_NAME}.old-${stamp}`);
    if (existsSync(dir)) renameSync(dir, old);
    renameSync(tmp, dir);
    rmSync(old, { recursive: true, force: true });
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    // Another process may have put an equal cache in place at the same moment.
    const other = checkCache(dir, manifest['key']).manifest;
    if (other) return other;
    if (e instanceof FileError) throw e;
    throw new FileError(dir, `cannot write the demo cache: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return full;
}
