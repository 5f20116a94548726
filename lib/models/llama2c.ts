/**
 * llama2.c checkpoints (version 0, "legacy" export) as a TensorSource with Hugging Face names.
 *
 * Layout: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a
 * negative vocab_size means an unshared classifier), then float32 arrays: token embedding
 * [V, dim], rms_att [L, dim], wq [L, dim, dim], wk and wv [L, kv_dim, dim], wo [L, dim, dim],
 * rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim],
 * rms_final [dim], freq_cis real and imaginary [seq_len, head_size/2] each (skipped), and the
 * classifier [V, dim] when unshared. Weights are in torch Linear layout [out, in].
 *
 * The q/k weights are NOT permuted to the rotate-half convention: the config says
 * ropeConvention 'interleaved' (pairs 2i, 2i + 1), as llama2.c computes RoPE. RMSNorm eps is
 * 1e-5 and θ = 10000, as in run.c.
 */
import { FormatError } from '../errors.js';
import { assertLittleEndianHost, FileSource } from '../io/bytes.js';
import type { TensorInfo, TensorSource } from '../io/safetensors.js';
import { Tensor } from '../tensor/tensor.js';
import { type LlamaConfig, llamaConfig } from './config.js';

const HEADER_BYTES = 28;

/** Opens a llama2.c `.bin` checkpoint: its config and its tensors under Hugging Face names. */
export function openLlama2c(path: string): { config: LlamaConfig; source: TensorSource } {
  assertLittleEndianHost();
  const file = new FileSource(path);
  if (file.length < HEADER_BYTES) throw new FormatError(path, `a llama2.c checkpoint starts with a ${HEADER_BYTES}-byte header, but the file has ${file.length} bytes`, { offset: 0 });
  const hb = new Uint8Array(HEADER_BYTES);
  file.read(0, hb);
  const h = new Int32Array(hb.buffer);
  const [dim, hidden, L, H, Hkv, vocabRaw, seqLen] = [h[0]!, h[1]!, h[2]!, h[3]!, h[4]!, h[5]!, h[6]!];
  const shared = vocabRaw > 0;
  const V = Math.abs(vocabRaw);
  const fields: [string, number][] = [
    ['dim', dim],
    ['hidden_dim', hidden],
    ['n_layers', L],
    ['n_heads', H],
    ['n_kv_heads', Hkv],
    ['vocab_size', V],
    ['seq_len', seqLen],
  ];
  for (const [n, v] of fields) if (!(v > 0 && v < 1 << 24)) throw new FormatError(path, `header field ${n} is ${v}; expected a positive size (is this a llama2.c v0 checkpoint?)`, { offset: 0 });
  if (dim % H !== 0 || H % Hkv !== 0) throw new FormatError(path, `header: ${H} heads must divide dim ${dim}, and ${Hkv} kv heads must divide the heads`, { offset: 0 });
  const hs = dim / H;
  if (hs % 2 !== 0) throw new FormatError(path, `header: head size ${hs} must be even (RoPE rotates pairs)`, { offset: 0 });
  const kvDim = Hkv * hs;

  const infos = new Map<string, TensorInfo>();
  const names: string[] = [];
  let off = HEADER_BYTES;
  const add = (name: string, shape: number[]): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    infos.set(name, { name, dtype: 'F32', shape, dataOffsets: [off - HEADER_BYTES, off - HEADER_BYTES + 4 * n], fileOffset: off, byteLength: 4 * n });
    names.push(name);
    off += 4 * n;
  };
  const perLayer = (suffix: string, shape: number[]): void => {
    for (let l = 0; l < L; l++) add(`model.layers.${l}.${suffix}`, shape);
  };
  add('model.embed_tokens.weight', [V, dim]);
  perLayer('input_layernorm.weight', [dim]);
  perLayer('self_attn.q_proj.weight', [dim, dim]);
  perLayer('self_attn.k_proj.weight', [kvDim, dim]);
  perLayer('self_attn.v_proj.weight', [kvDim, dim]);
  perLayer('self_attn.o_proj.weight', [dim, dim]);
  perLayer('post_attention_layernorm.weight', [dim]);
  perLayer('mlp.gate_proj.weight', [hidden, dim]);
  perLayer('mlp.down_proj.weight', [dim, hidden]);
  perLayer('mlp.up_proj.weight', [hidden, dim]);
  add('model.norm.weight', [dim]);
  off += 4 * seqLen * hs; // freq_cis_real, freq_cis_imag: recomputed, never read
  if (!shared) add('lm_head.weight', [V, dim]);
  if (off !== file.length)
    throw new FormatError(path, `a checkpoint with this header has ${off} bytes, but the file has ${file.length}`, {
      offset: 0,
      hint: 'the file is truncated, or it is not a version-0 llama2.c checkpoint',
    });

  const source: TensorSource = {
    names,
    has: (n) => infos.has(n),
    info: (n) => {
      const i = infos.get(n);
      if (!i) throw new FormatError(path, `no tensor ${JSON.stringify(n)} in this llama2.c checkpoint`);
      return i;
    },
    readFloat32(n) {
      const i = source.info(n);
      const out = new Float32Array(i.byteLength / 4);
      file.read(i.fileOffset, new Uint8Array(out.buffer));
      return out;
    },
    tensor(n) {
      return Tensor.from(source.readFloat32(n), source.info(n).shape);
    },
  };
  const config = llamaConfig({
    vocabSize: V,
    hiddenSize: dim,
    intermediateSize: hidden,
    numLayers: L,
    numHeads: H,
    numKvHeads: Hkv,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeConvention: 'interleaved',
    maxPositions: seqLen,
    tieWordEmbeddings: shared,
    bosTokenId: 1,
    eosTokenId: 2,
  });
  return { config, source };
}
