// node bench/add-norm-fusion.mjs [threads] [device]: the residual add fused into the norm
// (nn.setFusions({ addNorm }), F.rmsNormForward / F.layerNormForward with add: { residual, sum })
// against add followed by the norm, on the rows of a transformer block ([8·512, 768] and
// [8·512, 2048] float32; device 'cuda' adds a wait for the stream to each timed block).
// Fused and unfused alternate in rounds; median ms per call and the median per-round ratio.
import { loadavg } from 'node:os';

import { Tensor, cuda, nn, setNumThreads } from '../dist/index.js';
import { add } from '../dist/ops/index.js';

const F = nn.functional;
setNumThreads(+(process.argv[2] ?? 1));
const dev = process.argv[3] ?? 'cpu';
const sync = dev === 'cuda' ? () => cuda.synchronize() : () => {};
const before = loadavg().map((l) => l.toFixed(2)).join(' ');
const med = (v) => [...v].sort((p, q) => p - q)[v.length >> 1];
for (const [N, C] of [[4096, 768], [4096, 2048]]) {
  const t = (shape, seed) => Tensor.randn(shape, { seed }).to(dev);
  const x = t([N, C], 1), r = t([N, C], 2), w = t([C], 3), b = t([C], 4);
  const sum = t([N, C], 5), out = t([N, C], 6), mean = t([N], 7), rstd = t([N], 8);
  for (const kind of ['rms', 'layer']) {
    const norm = (src, opt) => (kind === 'rms' ? F.rmsNormForward(src, w, 1e-5, out, rstd, opt) : F.layerNormForward(src, w, b, 1e-5, out, mean, rstd, opt));
    const run = { off: () => norm(add(x, r, sum)), on: () => norm(x, { residual: r, sum }) };
    const res = { off: [], on: [] };
    for (let round = 0; round < 30; round++)
      for (const k of ['off', 'on']) {
        run[k]();
        sync();
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < 5; i++) run[k]();
        sync();
        res[k].push(Number(process.hrtime.bigint() - t0) / 5e6);
      }
    const ratios = res.off.map((o, i) => o / res.on[i]);
    console.log(`${kind}norm [${N}, ${C}] ${dev}, threads ${process.argv[2] ?? 1}: add then norm ${med(res.off).toFixed(3)} ms, fused ${med(res.on).toFixed(3)} ms, median per-round ratio ${med(ratios).toFixed(3)}`);
  }
}
console.log(`load ${before} → ${loadavg().map((l) => l.toFixed(2)).join(' ')}; ${new Date().toISOString()}`);
