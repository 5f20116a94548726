/**
 * Attention with an additive score bias [H, Tq, Tk] (T5's relative position bias) and its
 * per-row gradient dbias [B, H, Tq, Tk]: the blocked CPU kernel (several 256-key blocks, causal
 * and not, with and without the forward's output) and the CUDA kernels run by the emulation, both
 * against a float64 reference from the definition and against each other. Outputs are poisoned
 * with NaN first, so an element that a kernel never writes shows.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { nn, Tensor } from '../../lib/index.js';
import type { BlockCase } from '../support/attention-ref.js';
import { caseInputs, refAttentionBackward } from '../support/attention-ref.js';
import { type Dev, emulationPossible, nanT, put, read } from '../support/emulation.js';
import { expectClose, input, refAttention } from '../support/nn-helpers.js';
import { native } from '../../lib/native/loader.js';

const F = nn.functional;

/** Odd sizes around the tiles: CUDA 32 × 32, CPU 32 (causal) or 128 queries × 256 keys. */
const CASES: BlockCase[] = [
  { B: 2, Tq: 5, Tk: 5, H: 3, Hkv: 3, D: 4, causal: false, masked: true, dropout: 0 }, // encoder self-attention
  { B: 1, Tq: 37, Tk: 37, H: 2, Hkv: 1, D: 8, causal: true, masked: false, dropout: 0.2 }, // decoder, dropout
  { B: 2, Tq: 4, Tk: 39, H: 2, Hkv: 2, D: 5, causal: false, masked: true, dropout: 0 }, // cross-attention shapes
  { B: 1, Tq: 41, Tk: 300, H: 2, Hkv: 2, D: 8, causal: false, masked: true, dropout: 0.1 }, // two CPU key blocks
  { B: 1, Tq: 270, Tk: 270, H: 1, Hkv: 1, D: 4, causal: true, masked: false, dropout: 0 }, // causal, two key blocks
];

function run(c: BlockCase, dev: Dev, seed: number) {
  const { B, Tq, Tk, H, Hkv, D } = c;
  const a = caseInputs(c, seed);
  const bias = input(H * Tq * Tk, seed + 9, 2);
  const q = put(a.q.f32, [B, Tq, H, D], dev);
  const k = put(a.k.f32, [B, Tk, Hkv, D], dev);
  const v = put(a.v.f32, [B, Tk, Hkv, D], dev);
  const opts = { ...a.opts, mask: a.opts.mask ? a.opts.mask.to(dev) : null, bias: put(bias.f32, [H, Tq, Tk], dev) };
  const out = nanT([B, Tq, H, D], dev);
  const lse = nanT([B, H, Tq], dev);
  F.attentionForward(q, k, v, out, lse, opts);
  const dO = put(a.dO.f32, [B, Tq, H, D], dev);
  const grads = [true, false].map((withOut) => {
    const g = [nanT(q.shape.slice(), dev), nanT(k.shape.slice(), dev), nanT(v.shape.slice(), dev), nanT([B, H, Tq, Tk], dev)] as const;
    F.attentionBackward(q, k, v, lse, dO, g[0], g[1], g[2], { ...opts, out: withOut ? out : null, dbias: g[3] });
    return g.map(read);
  });
  return { a, bias, out: read(out), grads };
}

function check(c: BlockCase, r: ReturnType<typeof run>, who: string) {
  const { a, bias } = r;
  const ref = refAttention(a.q.f64, a.k.f64, a.v.f64, a.m, c, c.causal, a.scale, a.drop, bias.f64);
  expectClose(r.out, ref, `${who} out vs float64`, 1e-5, 1e-5);
  // The bias matters: the reference without it differs.
  const plain = refAttention(a.q.f64, a.k.f64, a.v.f64, a.m, c, c.causal, a.scale, a.drop);
  expect(Math.max(...plain.map((x, i) => Math.abs(x - ref[i]!)))).toBeGreaterThan(1e-2);
  const want = refAttentionBackward(a.q.f64, a.k.f64, a.v.f64, a.m, a.dO.f64, c, c.causal, a.scale, a.drop, bias.f64);
  for (const [w, g] of [['with out', r.grads[0]!], ['without out', r.grads[1]!]] as const) {
    expectClose(g[0]!, want.dq, `${who} dq ${w}`);
    expectClose(g[1]!, want.dk, `${who} dk ${w}`);
    expectClose(g[2]!, want.dv, `${who} dv ${w}`);
    expectClose(g[3]!, want.dbias!, `${who} dbias ${w}`);
  }
}

describe('attention with a score bias, blocked CPU kernel', () => {
  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('%s: forward, dq/dk/dv and dbias against float64', (_, c) => {
    check(c, run(c, 'cpu', 21), 'cpu');
  });
});

describe.skipIf(!emulationPossible())('attention with a score bias, CUDA kernels emulated', () => {
  beforeAll(() => native()._cudaEmulation());

  it.each(CASES.map((c) => [JSON.stringify(c), c] as const))('%s: against float64 and the CPU', (_, c) => {
    const dev = run(c, 'cuda', 21);
    check(c, dev, 'emulated');
    const cpu = run(c, 'cpu', 21);
    expectClose(dev.out, cpu.out, 'out vs cpu', 1e-5, 1e-5);
    for (let n = 0; n < 4; n++) expectClose(dev.grads[0]![n]!, cpu.grads[0]![n]!, `gradient ${n} vs cpu`);
  });
});

// Typed errors stay those of the CPU on the emulated device too.
describe.skipIf(!emulationPossible())('attention bias arguments on the emulated device', () => {
  beforeAll(() => native()._cudaEmulation());
  it('a bias on another device than q is a DeviceError naming it', () => {
    const q = put(new Float32Array(24), [1, 3, 2, 4], 'cuda');
    const k = put(new Float32Array(40), [1, 5, 2, 4], 'cuda');
    let err: unknown;
    try {
      F.attentionForward(q, k, k, nanT([1, 3, 2, 4], 'cuda'), nanT([1, 2, 3], 'cuda'), { bias: Tensor.zeros([2, 3, 5]) });
    } catch (e) {
      err = e;
    }
    expect((err as { argument?: string }).argument).toBe('bias');
  });
});
