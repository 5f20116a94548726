/**
 * Crash-safe writes of a set of files into one folder.
 *
 * Every file's bytes are produced before anything touches the disk (a serializer that throws
 * leaves the folder as it was); each file is then written to a temporary name in the same folder
 * and flushed; only when all temporaries are complete, and no target path is taken by something
 * that is not a regular file, are they renamed over the targets (rename is atomic within one
 * file system), and the folder is flushed. A failure before the renames removes the temporaries
 * and leaves the previous files intact. The renames of several files are not one atomic act: a
 * crash between two of them can mix old and new files, which the checkpoint reader detects (the
 * metadata file, renamed last, records the SHA-256 of the files it belongs to).
 */
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';

import { describe, FileError, invalidArgument } from '../errors.js';

export interface PendingFile {
  /** File name inside the folder (no path separators). */
  name: string;
  /** The bytes, or a function producing them (called before any file is written). */
  bytes: Uint8Array | (() => Uint8Array);
}

let counter = 0;

/** Flushes a folder's entries (renames) to disk where the file system allows it; a no-op where it refuses. */
export function flushDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some file systems refuse to open or flush a directory; the renames are still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Writes `files` into `dir` (created if missing) so that each target is either its old or its new content. */
export function writeFilesAtomic(dir: string, files: readonly PendingFile[]): void {
  if (typeof dir !== 'string' || dir === '') invalidArgument('dir', 'a folder path', describe(dir));
  for (const f of files) if (typeof f.name !== 'string' || f.name === '' || basename(f.name) !== f.name) invalidArgument('name', 'a plain file name', describe(f.name));
  const images = files.map((f) => ({ name: f.name, bytes: typeof f.bytes === 'function' ? f.bytes() : f.bytes }));
  for (const im of images) if (!(im.bytes instanceof Uint8Array)) invalidArgument(`bytes of ${im.name}`, 'a Uint8Array', describe(im.bytes));
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new FileError(dir, `cannot create the folder: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const temps: { tmp: string; target: string }[] = [];
  const cleanup = () => {
    for (const t of temps) rmSync(t.tmp, { force: true, recursive: false });
  };
  try {
    for (const im of images) {
      const target = join(dir, im.name);
      let kind: string | null = null;
      try {
        const st = lstatSync(target);
        kind = st.isFile() ? null : st.isDirectory() ? 'a folder' : 'something that is not a regular file';
      } catch {
        kind = null; // absent
      }
      if (kind !== null) throw new FileError(target, `cannot replace ${kind} with a file; nothing was written`, { hint: 'move it out of the way' });
      const tmp = join(dir, `.${im.name}.tmp-${process.pid}-${Date.now()}-${counter++}`);
      temps.push({ tmp, target });
      let fd: number | undefined;
      try {
        fd = openSync(tmp, 'wx');
        let off = 0;
        while (off < im.bytes.length) off += writeSync(fd, im.bytes, off, im.bytes.length - off);
        fsyncSync(fd);
      } catch (e) {
        throw new FileError(tmp, `cannot write: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    }
  } catch (e) {
    cleanup();
    throw e;
  }
  let done = 0;
  try {
    for (const t of temps) {
      renameSync(t.tmp, t.target);
      done += 1;
    }
  } catch (e) {
    for (const t of temps.slice(done)) rmSync(t.tmp, { force: true });
    throw new FileError(temps[done]?.target ?? dir, `cannot rename the new file into place: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  flushDir(dir);
}
