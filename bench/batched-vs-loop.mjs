// Batched small eigh against a loop of the single-matrix path (256 matrices of 8×8 and 16×16).
// Run: npm run build:ts && node bench/batched-vs-loop.mjs
import { Tensor, linalg, setNumThreads } from '../dist/index.js';
for (const r of [8, 16]) for (const th of [1, 2]) {
  setNumThreads(th);
  const B = 256;
  const x = Tensor.randn([B, r, r], { seed: 1 });
  const a = linalg.matmul(x, x, { transB: true }); // SPD batch
  const mats = Array.from({ length: B }, (_, i) => Tensor.from(a.toArray().subarray(i * r * r, (i + 1) * r * r), [r, r]));
  const time = (f) => { for (let i = 0; i < 3; i++) f(); const ts = []; for (let i = 0; i < 15; i++) { const t = process.hrtime.bigint(); f(); ts.push(Number(process.hrtime.bigint() - t) / 1e6); } ts.sort((p, q) => p - q); return ts[7]; };
  const tb = time(() => { const r2 = linalg.eighBatched(a); r2.values.dispose(); r2.vectors.dispose(); });
  const tl = time(() => { for (const m of mats) { const r2 = linalg.eigh(m); r2.values.dispose(); r2.vectors.dispose(); } });
  console.log(`r=${r} threads=${th}: batched ${tb.toFixed(3)} ms, loop ${tl.toFixed(3)} ms, speedup ${(tl / tb).toFixed(1)}x`);
}
