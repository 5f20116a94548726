/**
 * Finite-difference check of parameters' analytic gradients: for each named parameter, its two
 * largest gradient entries (and, with `median`, the median-sized one) against the central
 * difference (L(θ + h) − L(θ − h)) / 2h of `lossOf`, within 3·10⁻³ of the largest entry plus 2%
 * of the entry itself. The gradients must already be in `grad` (forward and backward done).
 */
import { expect } from 'vitest';

import type { Tensor } from '../../lib/index.js';

interface Param {
  name: string;
  tensor: Tensor;
  grad: Tensor | null;
}

export function expectGradsMatchFiniteDifferences(params: readonly Param[], names: readonly string[], lossOf: () => number, o: { h?: number; median?: boolean } = {}): void {
  const h = o.h ?? 1e-3;
  const byName = new Map(params.map((p) => [p.name, p]));
  for (const name of names) {
    const p = byName.get(name)!;
    expect(p, name).toBeDefined();
    const g = p.grad!.toArray();
    const order = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!));
    const gmax = Math.abs(g[order[0]!]!);
    expect(gmax, `${name}: a non-zero gradient`).toBeGreaterThan(0);
    const w = p.tensor.toArray();
    for (const i of o.median ? [...order.slice(0, 2), order[order.length >> 1]!] : order.slice(0, 2)) {
      const w0 = w[i]!;
      const at = (d: number): number => {
        w[i] = w0 + d;
        p.tensor.set(w);
        return lossOf();
      };
      const fd = (at(h) - at(-h)) / (2 * h);
      w[i] = w0;
      p.tensor.set(w);
      expect(Math.abs(fd - g[i]!), `${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`).toBeLessThan(3e-3 * gmax + 2e-2 * Math.abs(g[i]!));
    }
  }
}
