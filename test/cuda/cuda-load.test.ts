/**
 * Loading straight to the device (CPU loopback without a GPU): `loadModel(path, { device:
 * 'cuda', dtype })` makes each weight on the device in its storage dtype and fills it tensor by
 * tensor. Checked here: every parameter is on 'cuda' with the dtype asked for, the logits equal
 * the CPU-loaded model's bit for bit (float32 and bfloat16 storage, from F32, F16 and BF16
 * files), the load makes one upload per
 * weight and no download, and — in a fresh process, whose allocator peak is the load's own —
 * the host memory above the loaded model never exceeds a small multiple of the largest tensor,
 * far below the model's size (a full host copy would add the whole model). Bad input: a weight
 * of a dtype that cannot be placed, a model larger than the free device memory (the check's
 * message names the bytes, the free memory and the hint), 'cuda' where none is usable.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { DTypeError, OutOfMemoryError } from '../../lib/errors.js';
import { saveSafetensors } from '../../lib/io/safetensors.js';
import { checkDeviceFits, createLlama, loadModel, OOM_HINT, withOomContext } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import { Tensor } from '../../lib/tensor/tensor.js';
import { sharedData, skipNote } from '../support/shared-data.js';
import { ROOT } from '../support/tiny-cli.js';
import { enableLoopback, gpuStatus } from './parity.mjs';

const gpu = gpuStatus();
if (!gpu.ok) enableLoopback();
const loop = !gpu.ok;
const STORIES = sharedData('llama2c/stories260K.bin');
const FIX = join(ROOT, 'test', 'fixtures', 'models');
const tmp = mkdtempSync(join(tmpdir(), 'kfac-load-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const batch = { inputIds: Int32Array.from({ length: 14 }, (_, i) => (i * 7 + 3) % 64), shape: [2, 7] as [number, number] };
const hostValues = (t: Tensor): Float32Array => {
  using h = t.to('cpu', { dtype: 'float32' });
  return h.toArray();
};
const logits = (m: ReturnType<typeof loadModel>): Float32Array => {
  const out = m.forward(batch).logits;
  return out.device === 'cpu' ? out.toArray() : hostValues(out);
};

describe('loadModel to the device', () => {
  for (const dtype of ['float32', 'bfloat16'] as const)
    test(`llama-gqa, ${dtype}: weights on cuda in their storage dtype, the CPU load's logits, one upload per weight`, () => {
      using cpu = loadModel(join(FIX, 'llama-gqa'), { dtype });
      const before = loop ? native()._loopbackTransfers() : null;
      using dev = loadModel(join(FIX, 'llama-gqa'), { device: 'cuda', dtype });
      const after = loop ? native()._loopbackTransfers() : null;
      expect(dev.device).toBe('cuda');
      const hostParams = new Map(cpu.parameters().map((p) => [p.name, p]));
      let bf16 = 0;
      for (const p of dev.parameters()) {
        expect(p.tensor.device, p.name).toBe('cuda');
        const h = hostParams.get(p.name)!;
        expect(p.tensor.dtype, p.name).toBe(h.tensor.dtype);
        expect(p.trainable, p.name).toBe(h.trainable);
        if (p.tensor.dtype === 'bfloat16') bf16++;
        expect(hostValues(p.tensor), p.name).toEqual(hostValues(h.tensor));
      }
      expect(bf16).toBe(dtype === 'bfloat16' ? 2 * 7 : 0); // q, k, v, o, gate, up, down of 2 layers; lm_head stays float32
      expect(logits(dev)).toEqual(logits(cpu));
      if (before && after) {
        expect(after.downloads - before.downloads).toBe(0);
        const n = dev.parameters().length;
        // one upload per loaded weight, plus one per small tensor (norm weights) made on the host and moved
        expect(after.uploads - before.uploads).toBeGreaterThanOrEqual(n);
        expect(after.uploads - before.uploads).toBeLessThanOrEqual(2 * n);
      }
    });

  test('gpt2 (Conv1D weights stay float32 under bfloat16) and bert load to the device with the CPU logits', () => {
    for (const name of ['gpt2-lm', 'bert-cls']) {
      using cpu = loadModel(join(FIX, name), { dtype: 'bfloat16' });
      using dev = loadModel(join(FIX, name), { device: 'cuda', dtype: 'bfloat16' });
      for (const p of dev.parameters()) expect(p.tensor.device, p.name).toBe('cuda');
      if (name === 'gpt2-lm') expect(logits(dev)).toEqual(logits(cpu));
      else {
        // the whole classifier runs on the device, the pooler's tanh included (the act_out op)
        const ids = Int32Array.from({ length: 14 }, (_, i) => (i * 7 + 3) % dev.config.vocabSize);
        const run = (m: typeof dev): Float32Array => {
          const out = m.forward({ inputIds: ids, shape: [2, 7] }).logits;
          return out.device === 'cpu' ? out.toArray() : hostValues(out);
        };
        expect(run(dev)).toEqual(run(cpu));
      }
    }
  });

  test.skipIf(!STORIES)(`a llama2.c checkpoint (stories260K) loads to the device with the CPU's logits${skipNote(STORIES, 'llama2c/stories260K.bin')}`, () => {
    using cpu = loadModel(STORIES!);
    using dev = loadModel(STORIES!, { device: 'cuda' });
    for (const p of dev.parameters()) expect(p.tensor.device, p.name).toBe('cuda');
    const b = { inputIds: Int32Array.from({ length: 16 }, (_, i) => (i * 37 + 1) % 512), shape: [2, 8] as [number, number] };
    const l = (m: typeof cpu) => hostValues(m.forward(b).logits);
    expect(l(dev)).toEqual(l(cpu));
  });

  test('F16 and BF16 checkpoints load to the device with the CPU load\'s values and logits, in float32 and bfloat16 storage', () => {
    // the llama-gqa fixture rewritten in each half type: the reader widens each tensor on its way to the device
    using src = loadModel(join(FIX, 'llama-gqa'));
    const tensors: Record<string, Tensor> = {};
    for (const p of src.parameters()) tensors[p.name] = p.tensor;
    for (const fileDtype of ['F16', 'BF16'] as const) {
      const dir = join(tmp, `half-${fileDtype}`);
      mkdirSync(dir, { recursive: true });
      copyFileSync(join(FIX, 'llama-gqa', 'config.json'), join(dir, 'config.json'));
      saveSafetensors(join(dir, 'model.safetensors'), tensors, { dtype: fileDtype });
      for (const dtype of ['float32', 'bfloat16'] as const) {
        using cpu = loadModel(dir, { dtype });
        using dev = loadModel(dir, { device: 'cuda', dtype });
        const host = new Map(cpu.parameters().map((p) => [p.name, p.tensor]));
        for (const p of dev.parameters()) {
          expect(p.tensor.device, p.name).toBe('cuda');
          expect(p.tensor.dtype, `${fileDtype} ${dtype} ${p.name}`).toBe(host.get(p.name)!.dtype);
          expect(hostValues(p.tensor), `${fileDtype} ${dtype} ${p.name}`).toEqual(hostValues(host.get(p.name)!));
        }
        expect(logits(dev)).toEqual(logits(cpu));
      }
      // the half file really is another model than the float32 one (values rounded to 11 or 8 bits)
      using half = loadModel(dir);
      const q = half.parameters().find((p) => p.name.endsWith('q_proj.weight'))!;
      expect(hostValues(q.tensor)).not.toEqual(hostValues(tensors[q.name]!));
    }
  });

  test.skipIf(!loop)('peak host bytes of a load: a few tensors, never the model (fresh process)', () => {
    // 6 layers of hidden 64 (the largest tensor 172×64 of ~70 weights): a host copy of the model is ~30 times the bound
    const dir = join(tmp, 'peak');
    using m = createLlama({ vocabSize: 96, hiddenSize: 64, intermediateSize: 172, numLayers: 6, numHeads: 4, numKvHeads: 2 }, { seed: 1 });
    const tensors: Record<string, Tensor> = {};
    for (const p of m.parameters()) tensors[p.name] = p.tensor;
    mkdirSync(dir, { recursive: true });
    saveSafetensors(join(dir, 'model.safetensors'), tensors, { dtype: 'BF16' });
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 96, hidden_size: 64, intermediate_size: 172, num_hidden_layers: 6, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-6, tie_word_embeddings: false }),
    );
    const largest = Math.max(...m.parameters().map((p) => p.tensor.size)) * 4;
    const total = m.parameters().reduce((a, p) => a + p.tensor.size * 4, 0);
    const script = `
      import { loadModel } from './dist/models/index.js';
      import { native } from './dist/native/loader.js';
      native()._cpuLoopback();
      const m0 = native().info().memory;
      const m = loadModel(${JSON.stringify(dir)}, { device: 'cuda', dtype: 'bfloat16' });
      const m1 = native().info().memory;
      let device = 0;
      for (const p of m.parameters()) device += p.tensor.nbytes;
      console.log(JSON.stringify({ base: m0.allocatedBytes, peak: m1.peakAllocatedBytes, allocated: m1.allocatedBytes, device }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    const o = JSON.parse(r.stdout.trim()) as { base: number; peak: number; allocated: number; device: number };
    // the loopback's device memory is not the host allocator's: its peak is the host staging alone
    expect(o.device).toBeGreaterThan(total / 2); // the bf16 model is on the device
    expect(o.peak - o.base).toBeGreaterThan(0); // the staging is seen by the counter
    expect(o.peak - o.base).toBeLessThanOrEqual(2 * largest);
    expect(2 * largest).toBeLessThan(total / 10); // the bound is far below a host copy of the model
  });
});

describe('loadModel to the device: bad input', () => {
  test('a weight of a dtype that cannot be placed is a DTypeError naming it, before anything is allocated', () => {
    const dir = join(tmp, 'f64');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(FIX, 'llama-gqa', 'config.json'), join(dir, 'config.json'));
    // the fixture's safetensors with one weight's header entry rewritten to F64 (same byte length: half the elements)
    const buf = readFileSync(join(FIX, 'llama-gqa', 'model.safetensors'));
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
    const key = 'model.layers.0.mlp.down_proj.weight';
    header[key]!.dtype = 'F64';
    header[key]!.shape = [header[key]!.shape[0]!, header[key]!.shape[1]! / 2];
    let text = JSON.stringify(header);
    text += ' '.repeat(Math.max(0, n - text.length));
    expect(text.length).toBe(n);
    const out = Buffer.concat([buf.subarray(0, 8), Buffer.from(text, 'utf8'), buf.subarray(8 + n)]);
    writeFileSync(join(dir, 'model.safetensors'), out);
    const e = (() => {
      try {
        loadModel(dir, { device: 'cuda' });
      } catch (err) {
        return err;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(DTypeError);
    expect((e as DTypeError).argument).toBe(key);
    expect((e as Error).message).toMatch(/F64, which cannot be placed on cuda/);
  });

  test('a model larger than the free device memory: OutOfMemoryError with the bytes, the free memory and the hint', () => {
    expect(() => checkDeviceFits('loading m', 1000, { free: 2000, total: 4000 })).not.toThrow();
    const e = (() => {
      try {
        checkDeviceFits('loading m', 3 * 2 ** 30, { free: 2 ** 30, total: 80 * 2 ** 30 });
      } catch (err) {
        return err as OutOfMemoryError;
      }
      return null;
    })();
    expect(e).toBeInstanceOf(OutOfMemoryError);
    expect(e!.code).toBe('ERR_OUT_OF_MEMORY');
    expect(e!.message).toContain(`${3 * 2 ** 30} bytes`);
    expect(e!.message).toContain(`${2 ** 30} bytes (1024.0 MiB) of 81920.0 MiB are free`);
    expect(e!.hint).toBe(OOM_HINT);
    expect(OOM_HINT).toMatch(/smaller batch.*--gradient-checkpointing.*--dtype bfloat16/);
  });

  test('an allocation failing mid-run is rethrown naming what was being done, with the hint', () => {
    const native = new OutOfMemoryError('CUDA out of memory in cudaMalloc of 1073741824 bytes (512 MiB free)', { argument: 'bytes' });
    const e = withOomContext('training', native) as OutOfMemoryError;
    expect(e).toBeInstanceOf(OutOfMemoryError);
    expect(e.message).toMatch(/^training: CUDA out of memory in cudaMalloc of 1073741824 bytes \(512 MiB free\)/);
    expect(e.hint).toBe(OOM_HINT);
    expect(e.cause).toBe(native);
    expect(withOomContext('training', e)).toBe(e); // not wrapped twice
    const other = new DTypeError('x');
    expect(withOomContext('training', other)).toBe(other);
  });

  test('createLlama on the device: random weights drawn on the host one at a time, equal to the CPU model', () => {
    const cfg = { vocabSize: 40, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 };
    using a = createLlama(cfg, { seed: 4 });
    using b = createLlama(cfg, { seed: 4, device: 'cuda' });
    const bp = new Map(b.parameters().map((p) => [p.name, p]));
    for (const p of a.parameters()) {
      expect(bp.get(p.name)!.tensor.device).toBe('cuda');
      expect(hostValues(bp.get(p.name)!.tensor), p.name).toEqual(p.tensor.toArray());
    }
  });
});
