// The reader fuzzer's targets, as the parent process sees them: which files of a case may be
// mutated, how (binary or JSON text, where the integer fields are), and the fix-ups that carry a
// mutation past a checksum. Seeds and the reader calls themselves live in worker.mjs (the only
// place the library is loaded).
import { createHash } from 'node:crypto';

import { _internal, mutateBytes } from './mutate.mjs';

const { latin1, bytesOfText } = _internal;
const int = (r, n) => Math.floor(r() * n);

/** The 8-byte header length of a safetensors file. */
const safetensorsFields = () => [{ offset: 0, width: 8 }];
/** llama2.c checkpoint header: 7 int32. */
const llama2cFields = () => Array.from({ length: 7 }, (_, i) => ({ offset: 4 * i, width: 4 }));
/** tokenizer.bin: max_token_length, then per record a float score and an int32 length. */
function tokenizerBinFields(b) {
  const out = [{ offset: 0, width: 4 }];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let at = 4; at + 8 <= b.length && out.length < 4096; ) {
    out.push({ offset: at + 4, width: 4 });
    at += 8 + dv.getUint32(at + 4, true);
  }
  return out;
}

/**
 * A structured safetensors mutation: parse the header, change one shape, offset or dtype (or
 * drop or duplicate an entry), and write it back with a consistent length field, so the
 * mutation reaches the checks behind the header parse.
 */
function safetensorsHeaderEdit(r, b) {
  if (b.length < 8) return null;
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  if (n > b.length - 8) return null;
  let h;
  try {
    h = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n)));
  } catch {
    return null;
  }
  const names = Object.keys(h).filter((k) => k !== '__metadata__');
  if (!names.length) return null;
  const e = h[names[int(r, names.length)]];
  const big = [0, 1, -1, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53 - 1, 1e300, 0.5];
  const v = () => big[int(r, big.length)];
  switch (int(r, 7)) {
    case 0:
      if (Array.isArray(e.shape) && e.shape.length) e.shape[int(r, e.shape.length)] = v();
      break;
    case 1:
      if (Array.isArray(e.data_offsets)) e.data_offsets[int(r, 2)] = v();
      break;
    case 2:
      e.dtype = ['F64', 'I64', 'BOOL', 'F16', 'BF16', 'F32', 'U8', 'F8_E4M3', 'Q4'][int(r, 9)];
      break;
    case 3:
      e.shape = [...(e.shape ?? []), v()];
      break;
    case 4:
      delete h[names[int(r, names.length)]];
      break;
    case 5: {
      // shape and offsets consistent with each other but not with the file
      const count = v();
      e.shape = [count];
      e.data_offsets = [e.data_offsets?.[0] ?? 0, (e.data_offsets?.[0] ?? 0) + 4 * count];
      break;
    }
    default:
      h.__metadata__ = int(r, 2) ? { format: 'pt', big: 'x'.repeat(int(r, 1000)) } : { n: 1 };
  }
  const text = bytesOfText(JSON.stringify(h));
  const out = new Uint8Array(8 + text.length + (b.length - 8 - n));
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(b.subarray(8 + n), 8 + text.length);
  return out;
}

/** Rewrites optimizer.json's SHA-256 record after its companions were mutated. */
function fixHashes(files) {
  const meta = files['optimizer.json'];
  if (!meta) return;
  let j;
  try {
    j = JSON.parse(new TextDecoder().decode(meta));
  } catch {
    return;
  }
  if (!j || typeof j.files !== 'object' || j.files === null) return;
  for (const name of Object.keys(j.files)) if (files[name]) j.files[name] = createHash('sha256').update(files[name]).digest('hex');
  files['optimizer.json'] = bytesOfText(`${JSON.stringify(j, null, 2)}\n`);
}

const ST = { kind: 'binary', fields: safetensorsFields, structured: safetensorsHeaderEdit };
const JSONF = { kind: 'json' };

/** name → the files of a case that mutations may touch (weighted by listing), and fix-ups. */
export const TARGETS = {
  safetensors: { files: { 'x.safetensors': ST } },
  sharded: {
    files: {
      'model.safetensors.index.json': JSONF,
      'model-00001-of-00003.safetensors': ST,
      'model-00002-of-00003.safetensors': ST,
      'model-00003-of-00003.safetensors': ST,
    },
  },
  config: { files: { 'config.json': JSONF } },
  model: { files: { 'config.json': JSONF, 'model.safetensors': ST } },
  tokenizer: { files: { 'tokenizer.json': JSONF, 'tokenizer_config.json': JSONF } },
  llama2c: { files: { 'model.bin': { kind: 'binary', fields: llama2cFields } } },
  'llama2c-tokenizer': { files: { 'tokenizer.bin': { kind: 'binary', fields: tokenizerBinFields } } },
  adapter: { files: { 'adapter_config.json': JSONF, 'adapter_model.safetensors': ST } },
  optimizer: { files: { 'optimizer.json': JSONF, 'optimizer.safetensors': ST }, fixup: fixHashes },
  checkpoint: {
    files: { 'optimizer.json': JSONF, 'optimizer.safetensors': ST, 'adapter_config.json': JSONF, 'adapter_model.safetensors': ST },
    fixup: fixHashes,
  },
};

/**
 * The mutated case `index` of `target` under `seed`: one seed input (a folder image) with one
 * of its files mutated. `seeds` are [{name, variant, files: {rel: Uint8Array}}].
 */
export function makeCase(targetName, seeds, r) {
  const t = TARGETS[targetName];
  const base = seeds[int(r, seeds.length)];
  const files = { ...base.files };
  const rels = Object.keys(t.files).filter((f) => files[f]);
  const rel = rels[int(r, rels.length)];
  const spec = t.files[rel];
  const others = seeds.filter((s) => s !== base && s.files[rel]).map((s) => s.files[rel]);
  let bytes = files[rel];
  const ops = [];
  if (spec.structured && r() < 0.35) {
    const edited = spec.structured(r, bytes);
    if (edited) {
      bytes = edited;
      ops.push('headerEdit');
    }
  }
  if (!ops.length || r() < 0.3) {
    const m = mutateBytes(r, bytes, { kind: spec.kind, fields: spec.fields ? spec.fields(bytes) : [], others });
    bytes = m.bytes;
    ops.push(...m.ops);
  }
  files[rel] = bytes;
  if (t.fixup && rel !== 'optimizer.json' && r() < 0.85) {
    t.fixup(files);
    ops.push('fixHashes');
  }
  return { files, variant: base.variant, seedName: base.name, file: rel, ops };
}

export { latin1 };
