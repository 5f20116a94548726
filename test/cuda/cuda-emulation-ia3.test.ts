/**
 * IA3 on the device: the column scaling (col_scale, col_scale_backward; native/cuda/nn_colscale_body.h)
 * against float64 and the CPU on odd sizes, and a K-FAC + IA3 step of a tiny LLaMA (output-mode
 * k/v scales, input-mode down_proj scales) under the CUDA emulation following the CPU (the
 * tolerances of test/cuda/cuda-emulation-train.test.ts: losses 1e-6, vectors 2e-5 relative).
 */
import { beforeAll, describe, expect, it, test } from 'vitest';

import { nn, Tensor } from '../../lib/index.js';
import { KFAC } from '../../lib/kfac/kfac-optimizer.js';
import { createLlama } from '../../lib/models/index.js';
import { native } from '../../lib/native/loader.js';
import type { Module } from '../../lib/nn/module.js';
import { applyIa3 } from '../../lib/peft/ia3.js';
import { kfacLayersForIa3 } from '../../lib/peft/ia3-kfac.js';
import { untrackedTrainable } from '../../lib/peft/bitfit-kfac.js';
import { emulationPossible } from '../support/emulation.js';
import { maxRel } from '../support/helpers.js';
import { expectClose, input } from '../support/nn-helpers.js';

const F = nn.functional;
type Model = Module & { forward(b: unknown): { loss?: number | null }; backward(): void };

const on = (a: Float32Array, shape: number[], dev: 'cpu' | 'cuda'): Tensor => Tensor.from(a, shape).to(dev);
const host = (t: Tensor): Float32Array => (t.device === 'cpu' ? t.toArray() : t.to('cpu').toArray());

describe.skipIf(!emulationPossible())('IA3 under the CUDA emulation', () => {
  beforeAll(() => native()._cudaEmulation());

  it.each([[1, 1], [7, 3], [33, 129]])('colScale / colScaleBackward [%i, %i] vs float64 and the CPU', (R, n) => {
    const x = input(R * n, R * 13 + n, 2), l = input(n, n + 5, 1.5), b = input(R * n, R + 3), d0 = input(n, 99);
    const scaled = (shift: number) => Float64Array.from(x.f64, (v, k) => v * (l.f64[k % n]! + shift));
    const prod = Float64Array.from(x.f64, (v, k) => v * b.f64[k]!);
    const dl = Float64Array.from(d0.f64, (v, j) => {
      let s = v;
      for (let r = 0; r < R; r++) s += prod[r * n + j]!;
      return s;
    });
    const results = (['cpu', 'cuda'] as const).map((dev) => {
      const out = F.colScale(on(x.f32, [R, n], dev), on(l.f32, [n], dev), on(new Float32Array(R * n).fill(NaN), [R, n], dev), { shift: -1 });
      const acc = on(b.f32, [R, n], dev);
      F.colScale(on(x.f32, [R, n], dev), on(l.f32, [n], dev), acc, { accumulate: true }); // b + x ⊙ l
      const xi = on(x.f32, [R, n], dev);
      F.colScale(xi, on(l.f32, [n], dev), xi); // in place
      const u = on(new Float32Array(R * n).fill(NaN), [R, n], dev), dlt = on(d0.f32, [n], dev);
      F.colScaleBackward(on(x.f32, [R, n], dev), on(b.f32, [R, n], dev), u, dlt);
      return [out, acc, xi, u, dlt].map(host);
    });
    const refs = [scaled(-1), Float64Array.from(scaled(0), (v, k) => v + b.f64[k]!), scaled(0), prod, dl];
    results.forEach((r, side) => refs.forEach((ref, i) => expectClose(r[i]!, ref, `${side ? 'emulated' : 'cpu'} [${i}]`, 1e-6, 1e-6)));
    // the same arithmetic on both: the same bits
    results[1]!.forEach((r, i) => expect(Array.from(r), `bits [${i}]`).toEqual(Array.from(results[0]![i]!)));
  });

  test('tiny LLaMA, K-FAC + IA3: three steps follow the CPU', () => {
    const run = (device: 'cpu' | 'cuda') => {
      using m = createLlama({ vocabSize: 32, hiddenSize: 16, intermediateSize: 24, numLayers: 2, numHeads: 4, numKvHeads: 2 }, { seed: 5 }) as unknown as Model;
      if (device === 'cuda') m.to('cuda');
      applyIa3(m, { targetModules: ['k_proj', 'v_proj', 'down_proj'], feedforwardModules: ['down_proj'] });
      const layers = kfacLayersForIa3(m);
      const opt = new KFAC(layers, untrackedTrainable(m, layers), { lr: 0.05, momentum: 0.9, inverseEvery: 2 });
      const ids = Int32Array.from({ length: 24 }, (_, i) => (i * 5 + 1) % 32);
      const losses: number[] = [];
      for (let i = 0; i < 3; i++) {
        m.zeroGrad();
        losses.push(m.forward({ inputIds: ids, shape: [2, 12], labels: ids }).loss!);
        m.backward();
        opt.step({ batchSize: 2 });
      }
      opt.dispose();
      const vectors = new Map<string, Float32Array>();
      for (const p of m.parameters()) if (p.name.includes('ia3_l')) vectors.set(p.name, host(p.tensor));
      return { losses, vectors };
    };
    const c = run('cpu'), e = run('cuda');
    expect(c.losses[2]).not.toBe(c.losses[0]);
    for (const [i, l] of e.losses.entries()) expect(Math.abs(l - c.losses[i]!) / Math.abs(c.losses[i]!), `loss ${i}`).toBeLessThan(1e-6);
    expect(e.vectors.size).toBe(6);
    let moved = 0;
    for (const [name, v] of c.vectors) {
      expect(maxRel(e.vectors.get(name)!, v), name).toBeLessThan(2e-5);
      moved = Math.max(moved, ...Array.from(v, (x) => Math.abs(x - 1)));
    }
    expect(moved).toBeGreaterThan(0); // the steps changed the vectors
  });
});
