/**
 * The CUDA attention kernels (native/cuda/nn_attention_body.h) run by the CUDA emulation: every
 * block and thread of the device launch, phase by phase between barriers, on the host. Each case
 * of test/support/attention-ref.ts runs on the emulated cuda device and on the CPU; the emulated
 * forward and backward (with and without the forward's output) are checked against the float64
 * references and against the CPU kernel. Outputs are poisoned with NaN first.
 */
import { beforeAll, describe, expect, it } from 'vitest';

import { nn, Tensor } from '../../lib/index.js';
import { native } from '../../lib/native/loader.js';
import type { BlockCase } from '../support/attention-ref.js';
import { BLOCK_CASES, caseInputs, refAttentionBackward } from '../support/attention-ref.js';
import { expectClose, refAttention } from '../support/nn-helpers.js';

const F = nn.functional;
const emulated = !native().cuda;

type Dev = 'cpu' | 'cuda';
const put = (a: Float32Array, shape: number[], dev: Dev): Tensor => Tensor.from(a, shape).to(dev);
const nanT = (shape: number[], dev: Dev): Tensor => put(new Float32Array(shape.reduce((p, q) => p * q, 1)).fill(NaN), shape, dev);
const read = (t: Tensor): Float32Array => (t.device === 'cpu' ? t.toArray() : t.to('cpu').toArray());

function run(c: BlockCase, dev: Dev, seed: number) {
  const { B, Tq, Tk, H, Hkv, D } = c;
  const a = caseInputs(c, seed);
  const q = put(a.q.f32, [B, Tq, H, D], dev);
  const k = put(a.k.f32, [B, Tk, Hkv, D], dev);
  const v = put(a.v.f32, [B, Tk, Hkv, D], dev);
  const opts = { ...a.opts, mask: a.opts.mask ? a.opts.mask.to(dev) : null };
  const out = nanT([B, Tq, H, D], dev);
  const lse = nanT([B, H, Tq], dev);
  F.attentionForward(q, k, v, out, lse, opts);
  const dO = put(a.dO.f32, [B, Tq, H, D], dev);
  const grads = [true, false].map((withOut) => {
    const g = [nanT(q.shape.slice(), dev), nanT(k.shape.slice(), dev), nanT(v.shape.slice(), dev)] as const;
    F.attentionBackward(q, k, v, lse, dO, g[0], g[1], g[2], { ...opts, out: withOut ? out : null });
    return g.map(read);
  });
  return { a, out: read(out), lse: read(lse), grads };
}

describe.skipIf(!emulated)('CUDA attention kernels, emulated', () => {
  beforeAll(() => native()._cudaEmulation());

  it.each(BLOCK_CASES.map((c) => [JSON.stringify(c), c] as const))('%s: against float64 and the CPU', (_, c) => {
    const cpu = run(c, 'cpu', 13);
    const dev = run(c, 'cuda', 13);
    const { a } = dev;
    expectClose(dev.out, refAttention(a.q.f64, a.k.f64, a.v.f64, a.m, c, c.causal, a.scale, a.drop), 'out vs float64', 1e-5, 1e-5);
    expectClose(dev.out, cpu.out, 'out vs cpu', 1e-5, 1e-5);
    // lse: +inf exactly where a row sees no key, close elsewhere.
    expect(dev.lse.map((x) => (x === Infinity ? 1 : 0))).toEqual(cpu.lse.map((x) => (x === Infinity ? 1 : 0)));
    const finite = (x: Float32Array) => x.map((y) => (y === Infinity ? 0 : y));
    expectClose(finite(dev.lse), finite(cpu.lse), 'lse vs cpu', 1e-5, 1e-5);
    const want = refAttentionBackward(a.q.f64, a.k.f64, a.v.f64, a.m, a.dO.f64, c, c.causal, a.scale, a.drop);
    for (const [w, g] of [['with out', dev.grads[0]!], ['without out', dev.grads[1]!]] as const) {
      expectClose(g[0]!, want.dq, `dq ${w}`);
      expectClose(g[1]!, want.dk, `dk ${w}`);
      expectClose(g[2]!, want.dv, `dv ${w}`);
      expectClose(g[0]!, cpu.grads[0]![0]!, `dq ${w} vs cpu`);
      expectClose(g[1]!, cpu.grads[0]![1]!, `dk ${w} vs cpu`);
      expectClose(g[2]!, cpu.grads[0]![2]!, `dv ${w} vs cpu`);
    }
  });

  it('a KV-cache capacity beyond kvLength: rows past it get zero gradients; a head dimension above 256 is refused', () => {
    const [B, Tq, Tk, Tcap, H, Hkv, D] = [2, 3, 37, 70, 4, 2, 8];
    const mk = (n: number, s: number) => Tensor.randn([n], { seed: s }).toArray();
    const q = put(mk(B * Tq * H * D, 1), [B, Tq, H, D], 'cuda');
    const k = put(mk(B * Tcap * Hkv * D, 2), [B, Tcap, Hkv, D], 'cuda');
    const v = put(mk(B * Tcap * Hkv * D, 3), [B, Tcap, Hkv, D], 'cuda');
    const [out, lse] = [nanT([B, Tq, H, D], 'cuda'), nanT([B, H, Tq], 'cuda')];
    F.attentionForward(q, k, v, out, lse, { causal: true, kvLength: Tk });
    const [dq, dk, dv] = [nanT([B, Tq, H, D], 'cuda'), nanT([B, Tcap, Hkv, D], 'cuda'), nanT([B, Tcap, Hkv, D], 'cuda')];
    F.attentionBackward(q, k, v, lse, put(mk(B * Tq * H * D, 4), [B, Tq, H, D], 'cuda'), dq, dk, dv, { causal: true, kvLength: Tk, out });
    const gk = read(dk);
    const gv = read(dv);
    let before = 0;
    for (let i = 0; i < gk.length; i++) {
      const t = Math.floor(i / (Hkv * D)) % Tcap;
      if (t >= Tk) {
        expect(gk[i]).toBe(0);
        expect(gv[i]).toBe(0);
      } else before += Math.abs(gk[i]!) + Math.abs(gv[i]!);
    }
    expect(before).toBeGreaterThan(0);
    expect(read(dq).every(Number.isFinite)).toBe(true);
    const big = put(new Float32Array(257), [1, 1, 1, 257], 'cuda');
    expect(() => F.attentionForward(big, big, big, nanT([1, 1, 1, 257], 'cuda'), nanT([1, 1, 1], 'cuda'))).toThrow(/head dimension/);
  });
});
