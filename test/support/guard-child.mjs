// Run by test/linalg/guard-pages.test.ts in a child process with KFAC_HOST_GUARD_PAGES=1: every
// tensor ends right before an inaccessible page, so a kernel that reads or writes past a tensor
// kills this process with SIGSEGV. Runs the GEMMs (float32, bfloat16), the Linear ops and the
// fused ops on odd sizes, checks each result against a float64 reference, and prints a summary.
import { pathToFileURL } from 'node:url';

const root = process.argv[2];
const { Tensor, linalg, nn, ops, info, setBf16Kernel, bf16Kernels } = await import(pathToFileURL(`${root}/dist/index.js`).href);
const F = nn.functional;

let seed = 1;
const rand = (shape) => Tensor.randn(shape, { seed: seed++ });
let checked = 0;
let worst = 0;
function check(name, got, want, scale) {
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / (scale[i] + 1e-30);
    if (!(e <= 1e-2)) throw new Error(`${name}: element ${i} is ${got[i]}, expected ${want[i]}`);
    worst = Math.max(worst, e);
  }
  checked++;
}
// C = op(A)·op(B) in float64 and the magnitude Σ|a·b| per element.
function ref(A, B, m, n, k, transA, transB) {
  const c = new Float64Array(m * n), s = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let v = 0, w = 0;
      for (let p = 0; p < k; p++) {
        const x = A[transA ? p * m + i : i * k + p] * B[transB ? j * k + p : p * n + j];
        v += x;
        w += Math.abs(x);
      }
      c[i * n + j] = v;
      s[i * n + j] = w;
    }
  return { c, s };
}

const SIZES = [[1, 1, 1], [7, 5, 3], [33, 17, 65], [67, 49, 130]];
for (const [m, n, k] of SIZES)
  for (const transA of [false, true])
    for (const transB of [false, true]) {
      const a = rand(transA ? [k, m] : [m, k]), b = rand(transB ? [n, k] : [k, n]);
      const { c, s } = ref(a.toArray(), b.toArray(), m, n, k, transA, transB);
      const got = linalg.matmul(a, b, { transA, transB });
      check(`matmul ${m}×${n}×${k}`, got.toArray(), c, s);
      got.dispose();
      if (!transA) {
        const ab = a.to('cpu', { dtype: 'bfloat16' }), bb = b.to('cpu', { dtype: 'bfloat16' });
        const r = ref(ab.toArray(), bb.toArray(), m, n, k, false, transB);
        for (const kernel of ['portable', 'avx512bf16', 'amx'].filter((x) => bf16Kernels().supported[x])) {
          setBf16Kernel(kernel);
          const g = linalg.matmul(ab, bb, { transB });
          check(`bf16 matmul (${kernel}) ${m}×${n}×${k}`, g.toArray(), r.c, r.s);
          g.dispose();
        }
        setBf16Kernel('auto');
        ab.dispose();
        bb.dispose();
      }
      a.dispose();
      b.dispose();
    }

// Linear, float32 and bfloat16 weights, forward and input gradient, twice (the second call
// reads the cached weight panels).
for (const [N, IN, OUT] of [[1, 1, 1], [5, 7, 3], [13, 33, 17], [9, 130, 67]])
  for (const dtype of ['float32', 'bfloat16']) {
    const x = rand([N, IN]), W0 = rand([OUT, IN]), b = rand([OUT]), dy = rand([N, OUT]);
    const W = dtype === 'float32' ? W0 : W0.to('cpu', { dtype });
    const xr = dtype === 'float32' ? x.toArray() : ops.cast(x, 'bfloat16').toArray();
    const dyr = dtype === 'float32' ? dy.toArray() : ops.cast(dy, 'bfloat16').toArray();
    const { c, s } = ref(xr, W.toArray(), N, OUT, IN, false, true);
    const bias = b.toArray();
    for (let i = 0; i < N * OUT; i++) { c[i] += bias[i % OUT]; s[i] += Math.abs(bias[i % OUT]); }
    const d = ref(dyr, W.toArray(), N, IN, OUT, false, false);
    for (let rep = 0; rep < 2; rep++) {
      const y = Tensor.empty([N, OUT]), dx = Tensor.empty([N, IN]);
      F.linearForward(x, W, b, y);
      check(`linear ${dtype} ${N}×${IN}→${OUT}`, y.toArray(), c, s);
      F.linearBackward(x, W, dy, { dx, dW: null, db: null });
      check(`linear backward ${dtype} ${N}×${IN}→${OUT}`, dx.toArray(), d.c, d.s);
      y.dispose();
      dx.dispose();
    }
    for (const t of [x, W0, W, b, dy]) t.dispose();
  }

process.stdout.write(JSON.stringify({ checked, worst, guard: info().memory.systemAllocations > 0 }));
