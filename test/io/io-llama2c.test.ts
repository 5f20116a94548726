/**
 * llama2.c checkpoints and tokenizer.
 *
 * Expected values: test/fixtures/io/llama2c/expected.json, from an independent Python
 * re-implementation of llama2.c's reader and of run.c's encode()/decode()
 * (tools/make_io_fixtures_llama2c.py) run on ../shared/data/llama2c. The README of that folder
 * documents the format and the 7-value header.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { FormatError, KfacError } from '../../lib/index.js';
import { Llama2cCheckpoint, Llama2cTokenizer, openLlama2c } from '../../lib/io/index.js';
import { sharedData, skipNote } from '../support/shared-data.js';

const fixture = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'io', 'llama2c', 'expected.json'), 'utf8')) as {
  model: Record<string, unknown> & { probes: Record<string, number[]>; parameterCount: number; vocabSize: number; nLayers: number };
  tokenizer: { maxTokenLength: number; vocabSize: number; first: string[]; lastScore: number };
  cases: { text: string; ids: number[]; idsWithEos: number[]; idsNoBos: number[]; decoded: string }[];
};
const DIR = sharedData('llama2c');

/** A llama2.c file from a header and a number of float32s after it. */
function checkpoint(header: number[], floats: number): Uint8Array {
  const b = new Uint8Array(28 + 4 * floats);
  const dv = new DataView(b.buffer);
  header.forEach((v, i) => dv.setInt32(4 * i, v, true));
  for (let i = 0; i < floats; i++) dv.setFloat32(28 + 4 * i, i, true);
  return b;
}

describe('llama2.c checkpoint format (synthetic files)', () => {
  // dim 4, hidden 6, 2 layers, 2 heads, 1 kv head, vocab 5, seq 3 → head 2, kv_dim 2
  const floatsFor = (shared: boolean): number => 5 * 4 + 2 * (4 + 16 + 8 + 8 + 16 + 4 + 24 + 24 + 24) + 4 + 3 * 2 + (shared ? 0 : 5 * 4);
  it('lays out the weights in the documented order under Hugging Face names', () => {
    const c = Llama2cCheckpoint.fromBytes(checkpoint([4, 6, 2, 2, 1, -5, 3], floatsFor(false)));
    expect(c.header).toEqual({ dim: 4, hiddenDim: 6, nLayers: 2, nHeads: 2, nKvHeads: 1, vocabSize: 5, seqLen: 3, sharedClassifier: false });
    // float i of the data section has the value i: each weight starts where the order says
    const first = (name: string): number => c.readFloat32(name)[0]!;
    expect(first('model.embed_tokens.weight')).toBe(0);
    expect(first('model.layers.0.input_layernorm.weight')).toBe(20);
    expect(first('model.layers.1.input_layernorm.weight')).toBe(24);
    expect(first('model.layers.0.self_attn.q_proj.weight')).toBe(28);
    expect(first('model.layers.1.self_attn.q_proj.weight')).toBe(44);
    expect(first('model.layers.0.self_attn.k_proj.weight')).toBe(60);
    expect(first('model.layers.0.self_attn.v_proj.weight')).toBe(76);
    expect(first('model.layers.0.self_attn.o_proj.weight')).toBe(92);
    expect(first('model.layers.0.post_attention_layernorm.weight')).toBe(124);
    expect(first('model.layers.0.mlp.gate_proj.weight')).toBe(132);
    expect(first('model.layers.0.mlp.down_proj.weight')).toBe(180);
    expect(first('model.layers.0.mlp.up_proj.weight')).toBe(228);
    expect(first('model.norm.weight')).toBe(276);
    expect(first('lm_head.weight')).toBe(276 + 4 + 6); // after freq_cis (seq 3 × head 2)
    expect(c.info('model.layers.1.mlp.down_proj.weight').shape).toEqual([4, 6]);
    expect(c.info('model.layers.1.self_attn.k_proj.weight').shape).toEqual([2, 4]);
    expect(c.config).toMatchObject({ family: 'llama', tieWordEmbeddings: false, numKvHeads: 1, headDim: 2, intermediateSize: 6, maxPositionEmbeddings: 3 });
    const shared = Llama2cCheckpoint.fromBytes(checkpoint([4, 6, 2, 2, 1, 5, 3], floatsFor(true)));
    expect(shared.has('lm_head.weight')).toBe(false);
    expect(shared.config.tieWordEmbeddings).toBe(true);
  });

  it.each([
    ['a short header', new Uint8Array(20), /28-byte header/],
    ['a zero dimension', checkpoint([0, 6, 2, 2, 1, 5, 3], 10), /dim = 0/],
    ['a negative layer count', checkpoint([4, 6, -2, 2, 1, 5, 3], 10), /n_layers/],
    ['heads that do not divide dim', checkpoint([6, 6, 2, 4, 1, 5, 3], 10), /not a multiple of n_heads/],
    ['kv heads that do not divide heads', checkpoint([8, 6, 2, 4, 3, 5, 3], 10), /n_kv_heads/],
    ['an absurd size', checkpoint([1 << 30, 6, 2, 2, 1, 5, 3], 10), /out of range/],
    ['a truncated file', checkpoint([4, 6, 2, 2, 1, -5, 3], floatsFor(false) - 1), /truncated/],
    ['trailing bytes', checkpoint([4, 6, 2, 2, 1, 5, 3], floatsFor(true) + 1), /trailing/],
    ['a huge layer count in a small file (no per-layer work before the size check)', checkpoint([4, 6, 1 << 20, 2, 1, 5, 3], 10), /implies/],
  ])('refuses %s with a FormatError', (_l, bytes, pattern) => {
    expect(() => Llama2cCheckpoint.fromBytes(bytes, 'x.bin')).toThrow(FormatError);
    expect(() => Llama2cCheckpoint.fromBytes(bytes, 'x.bin')).toThrow(pattern);
  });
});

describe.skipIf(DIR === undefined)(`stories260K.bin and tok512.bin${skipNote(DIR, 'llama2c')}`, () => {
  const model = DIR === undefined ? undefined! : openLlama2c(join(DIR, 'stories260K.bin'));
  const tok = DIR === undefined ? undefined! : Llama2cTokenizer.open(join(DIR, 'tok512.bin'), model.header.vocabSize);

  it('reads the header, the parameter count and the ModelConfig', () => {
    const m = fixture.model;
    expect(model.header).toEqual({ dim: m['dim'], hiddenDim: m['hiddenDim'], nLayers: m['nLayers'], nHeads: m['nHeads'], nKvHeads: m['nKvHeads'], vocabSize: m['vocabSize'], seqLen: m['seqLen'], sharedClassifier: m['sharedClassifier'] });
    expect(model.parameterCount).toBe(m.parameterCount);
    expect(model.names.reduce((n, name) => n + model.info(name).shape.reduce((a, b) => a * b, 1), 0)).toBe(m.parameterCount);
    expect(model.names.length).toBe(2 + 9 * m.nLayers);
    expect(model.config).toMatchObject({ family: 'llama', normEps: 1e-5, norm: 'rmsnorm', hiddenAct: 'silu', rope: { theta: 10000, style: 'interleaved' }, tieWordEmbeddings: true, vocabSize: 512 });
  });

  it('puts the weights where the documented order says', () => {
    for (const [name, want] of Object.entries(fixture.model.probes)) expect(Array.from(model.readFloat32(name).subarray(0, 4))).toEqual(want);
    using t = model.tensor('model.layers.4.mlp.down_proj.weight');
    expect(t.shape).toEqual([64, 172]);
  });

  it('reads the tokenizer', () => {
    expect(tok.vocabSize).toBe(fixture.tokenizer.vocabSize);
    expect(tok.maxTokenLength).toBe(fixture.tokenizer.maxTokenLength);
    expect(tok.vocab.slice(0, 5).map((v) => String.fromCharCode(...v))).toEqual(fixture.tokenizer.first);
    expect(tok.scores[tok.vocabSize - 1]).toBe(fixture.tokenizer.lastScore);
  });

  it('encodes "Once upon a time" as llama2.c does', () => {
    expect(tok.encode('Once upon a time')).toEqual(fixture.cases[0]!.ids);
  });

  it.each(fixture.cases.map((c) => [JSON.stringify(c.text), c] as const))('encodes and decodes %s', (_l, c) => {
    expect(tok.encode(c.text)).toEqual(c.ids);
    expect(tok.encode(c.text, { eos: true })).toEqual(c.idsWithEos);
    expect(tok.encode(c.text, { bos: false })).toEqual(c.idsNoBos);
    expect(tok.decode(c.ids)).toBe(c.decoded);
  });

  it('refuses a tokenizer file that does not match the model or is cut short', () => {
    const bytes = new Uint8Array(readFileSync(join(DIR!, 'tok512.bin')));
    expect(() => Llama2cTokenizer.fromBytes(bytes, 600)).toThrow(/expected 600 tokens/);
    expect(() => Llama2cTokenizer.fromBytes(bytes, 300)).toThrow(/bytes after the last/);
    for (const n of [0, 3, 10, 1000, bytes.length - 1]) expect(() => Llama2cTokenizer.fromBytes(bytes.subarray(0, n))).toThrow(FormatError);
    expect(() => tok.decode([512])).toThrow(KfacError);
    expect(() => tok.encode(7 as never)).toThrow(KfacError);
  });
});

/**
 * A plain float64 forward pass of llama2.c's run.c, driven only by what the loader returns
 * (ModelConfig and Hugging Face-named weights). If the weight order, the names, the shared
 * classifier, the interleaved RoPE or the tokenizer were wrong, the documented greedy story would
 * not come out.
 */
function greedy(model: Llama2cCheckpoint, prompt: number[], steps: number): number[] {
  const c = model.config;
  const w = (n: string): Float32Array => model.readFloat32(n);
  const D = c.hiddenSize;
  const hs = c.headDim;
  const kvDim = c.numKvHeads * hs;
  const kvMul = c.numHeads / c.numKvHeads;
  const matvec = (m: Float32Array, x: Float64Array, rows: number): Float64Array => {
    const cols = x.length;
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += m[r * cols + k]! * x[k]!;
      out[r] = s;
    }
    return out;
  };
  const rmsnorm = (x: Float64Array, g: Float32Array): Float64Array => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const scale = 1 / Math.sqrt(ss / x.length + c.normEps);
    return x.map((v, i) => v * scale * g[i]!);
  };
  const layers = Array.from({ length: c.numLayers }, (_, l) => {
    const p = `model.layers.${l}.`;
    return {
      att: w(p + 'input_layernorm.weight'), q: w(p + 'self_attn.q_proj.weight'), k: w(p + 'self_attn.k_proj.weight'), v: w(p + 'self_attn.v_proj.weight'),
      o: w(p + 'self_attn.o_proj.weight'), ffn: w(p + 'post_attention_layernorm.weight'), gate: w(p + 'mlp.gate_proj.weight'), up: w(p + 'mlp.up_proj.weight'), down: w(p + 'mlp.down_proj.weight'),
      keys: [] as Float64Array[], values: [] as Float64Array[],
    };
  });
  const emb = w('model.embed_tokens.weight');
  const head = c.tieWordEmbeddings ? emb : w('lm_head.weight');
  const norm = w('model.norm.weight');
  expect(c.rope?.style).toBe('interleaved');
  const rope = (vec: Float64Array, pos: number): void => {
    for (let i = 0; i < vec.length; i += 2) {
      const freq = 1 / Math.pow(c.rope!.theta, (i % hs) / hs);
      const cos = Math.cos(pos * freq), sin = Math.sin(pos * freq);
      const a = vec[i]!, b = vec[i + 1]!;
      vec[i] = a * cos - b * sin;
      vec[i + 1] = a * sin + b * cos;
    }
  };
  const out: number[] = [];
  let token = prompt[0]!;
  for (let pos = 0; pos < prompt.length - 1 + steps; pos++) {
    let x = Float64Array.from(emb.subarray(token * D, (token + 1) * D));
    for (const L of layers) {
      const xb = rmsnorm(x, L.att);
      const q = matvec(L.q, xb, D), k = matvec(L.k, xb, kvDim), v = matvec(L.v, xb, kvDim);
      rope(q, pos);
      rope(k, pos);
      L.keys.push(k);
      L.values.push(v);
      const y = new Float64Array(D);
      for (let h = 0; h < c.numHeads; h++) {
        const kh = Math.floor(h / kvMul) * hs;
        const scores = L.keys.map((kt) => {
          let s = 0;
          for (let i = 0; i < hs; i++) s += q[h * hs + i]! * kt[kh + i]!;
          return s / Math.sqrt(hs);
        });
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        e.forEach((p, t) => {
          for (let i = 0; i < hs; i++) y[h * hs + i] = y[h * hs + i]! + (p / z) * L.values[t]![kh + i]!;
        });
      }
      const attnOut = matvec(L.o, y, D);
      x = x.map((xi, i) => xi + attnOut[i]!);
      const xb2 = rmsnorm(x, L.ffn);
      const g = matvec(L.gate, xb2, c.intermediateSize), u = matvec(L.up, xb2, c.intermediateSize);
      const hb = g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * u[i]!);
      const down = matvec(L.down, hb, D);
      x = x.map((xi, i) => xi + down[i]!);
    }
    const logits = matvec(head, rmsnorm(x, norm), c.vocabSize);
    if (pos + 1 < prompt.length) token = prompt[pos + 1]!;
    else {
      let best = 0;
      for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
      token = best;
      out.push(token);
    }
  }
  return out;
}

describe.skipIf(DIR === undefined)(`stories260K generates the documented greedy story${skipNote(DIR, 'llama2c')}`, () => {
  it('continues "Once upon a time" with ", there was a little girl named Lily."', () => {
    const model = openLlama2c(join(DIR!, 'stories260K.bin'));
    const tok = Llama2cTokenizer.open(join(DIR!, 'tok512.bin'), model.header.vocabSize);
    const prompt = tok.encode('Once upon a time');
    const text = tok.decode([...prompt, ...greedy(model, prompt, 14)]);
    expect(text.startsWith('Once upon a time, there was a little girl named Lily.')).toBe(true);
  });
});

