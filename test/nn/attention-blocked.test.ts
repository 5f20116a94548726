/**
 * The blocked (FlashAttention-2 order) CPU attention against float64 references on odd sizes:
 * one query block and several (32 causal / 128 rows), one key block and several (256 keys), every head
 * grouping, padding, causal with Tq < Tk (a KV cache), dropout; backward with the forward's
 * output (D = rowsum(dO ∘ O)) and without it (D rebuilt from the probabilities).
 */
import { afterAll, describe, expect, it } from 'vitest';

import { nn, setNumThreads, Tensor } from '../../lib/index.js';
import type { BlockCase } from '../support/attention-ref.js';
import { BLOCK_CASES, caseInputs, refAttentionBackward } from '../support/attention-ref.js';
import { expectClose, fdGrad, poisoned, refAttention } from '../support/nn-helpers.js';

const F = nn.functional;
afterAll(() => setNumThreads(0));

const label = (c: BlockCase) => JSON.stringify(c);

describe('blocked attention (CPU) against float64 references', () => {
  it.each(BLOCK_CASES.map((c) => [label(c), c] as const))('%s', (_, c) => {
    const { B, Tq, Tk, H, Hkv, D } = c;
    const a = caseInputs(c, 5);
    const tq = Tensor.from(a.q.f32, [B, Tq, H, D]);
    const tk = Tensor.from(a.k.f32, [B, Tk, Hkv, D]);
    const tv = Tensor.from(a.v.f32, [B, Tk, Hkv, D]);
    const out = poisoned([B, Tq, H, D]);
    const lse = poisoned([B, H, Tq]);
    F.attentionForward(tq, tk, tv, out, lse, a.opts);
    expectClose(out.toArray(), refAttention(a.q.f64, a.k.f64, a.v.f64, a.m, c, c.causal, a.scale, a.drop), 'out', 1e-5, 1e-5);
    // Finite, or +inf for a causal row whose visible keys are all padding.
    expect(lse.toArray().every((x) => Number.isFinite(x) || x === Infinity)).toBe(true);
    const want = refAttentionBackward(a.q.f64, a.k.f64, a.v.f64, a.m, a.dO.f64, c, c.causal, a.scale, a.drop);
    const dOut = Tensor.from(a.dO.f32, out.shape);
    for (const withOut of [true, false]) {
      const [dq, dk, dv] = [poisoned(tq.shape), poisoned(tk.shape), poisoned(tv.shape)];
      F.attentionBackward(tq, tk, tv, lse, dOut, dq, dk, dv, { ...a.opts, out: withOut ? out : null });
      const w = withOut ? 'with out' : 'without out';
      expectClose(dq.toArray(), want.dq, `dq ${w}`);
      expectClose(dk.toArray(), want.dk, `dk ${w}`);
      expectClose(dv.toArray(), want.dv, `dv ${w}`);
    }
  });

  it('the float64 backward reference agrees with finite differences of the forward reference', () => {
    const c: BlockCase = { B: 1, Tq: 3, Tk: 6, H: 4, Hkv: 2, D: 3, causal: true, masked: true, dropout: 0.3 };
    const a = caseInputs(c, 9);
    const f = () => refAttention(a.q.f64, a.k.f64, a.v.f64, a.m, c, c.causal, a.scale, a.drop);
    const g = refAttentionBackward(a.q.f64, a.k.f64, a.v.f64, a.m, a.dO.f64, c, c.causal, a.scale, a.drop);
    expectClose(g.dq, fdGrad(a.q.f64, f, a.dO.f64), 'dq', 1e-8, 1e-6);
    expectClose(g.dk, fdGrad(a.k.f64, f, a.dO.f64), 'dk', 1e-8, 1e-6);
    expectClose(g.dv, fdGrad(a.v.f64, f, a.dO.f64), 'dv', 1e-8, 1e-6);
  });

  it('several key blocks: results identical for 1 and 2 threads', () => {
    const c = BLOCK_CASES[5]!;
    const { B, Tq, Tk, H, Hkv, D } = c;
    const a = caseInputs(c, 2);
    const run = (threads: number) => {
      setNumThreads(threads);
      const tq = Tensor.from(a.q.f32, [B, Tq, H, D]);
      const tk = Tensor.from(a.k.f32, [B, Tk, Hkv, D]);
      const tv = Tensor.from(a.v.f32, [B, Tk, Hkv, D]);
      const [out, lse] = [Tensor.empty(tq.shape), Tensor.empty([B, H, Tq])];
      F.attentionForward(tq, tk, tv, out, lse, a.opts);
      const g = [Tensor.empty(tq.shape), Tensor.empty(tk.shape), Tensor.empty(tv.shape)] as const;
      F.attentionBackward(tq, tk, tv, lse, Tensor.from(a.dO.f32, tq.shape), g[0], g[1], g[2], { ...a.opts, out });
      return [out, lse, ...g].map((t) => Array.from(t.toArray()));
    };
    expect(run(2)).toEqual(run(1));
    setNumThreads(0);
  });
});
