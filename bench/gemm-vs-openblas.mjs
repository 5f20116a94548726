// Square float32 GEMM throughput of this addon against numpy/OpenBLAS, measured in one run with
// the two interleaved (round after round), so that load from other processes hits both alike.
//
//   node bench/gemm-vs-openblas.mjs [rounds=5] [samples=5] [sizes=256,512,1024]
//
// Peers (each a fresh python3 process per round and thread count):
//   openblas-avx512:  OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (OpenBLAS picks its kernels)
//   openblas-haswell: the environment as given (OPENBLAS_CORETYPE=Haswell here)
// Each cell is the median over rounds × samples of GFLOP/s = 2n³ / seconds per call.
// Writes bench/out/gemm-vs-openblas.json.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const rounds = Number(process.argv[2] ?? 5);
const samples = Number(process.argv[3] ?? 5);
const sizes = (process.argv[4] ?? '256,512,1024').split(',').map(Number);
const threadCounts = [1, 2];
// KFAC_ADDON=path loads another build of the addon (default: this checkout's build/Release).
const addon = createRequire(import.meta.url)(process.env.KFAC_ADDON ?? '../build/Release/kfac_peft.node');

const PEER = `
import sys, time, numpy as np
sizes = [int(s) for s in sys.argv[1].split(',')]; samples = int(sys.argv[2])
rng = np.random.default_rng(1)
for n in sizes:
    a = rng.random((n, n), dtype=np.float32); b = rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), dtype=np.float32)
    inner = max(1, int(4e7 / (2 * n ** 3)))
    for _ in range(3): np.matmul(a, b, out=c)
    out = []
    for _ in range(samples):
        t = time.perf_counter()
        for _ in range(inner): np.matmul(a, b, out=c)
        out.append(2 * n ** 3 * inner / (time.perf_counter() - t) / 1e9)
    print(n, *out)
`;

function peer(kind, threads) {
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads) };
  if (kind === 'openblas-avx512') {
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
  }
  const r = spawnSync('python3', ['-c', PEER, sizes.join(','), String(samples)], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`peer failed: ${r.stderr}`);
  const res = {};
  for (const line of r.stdout.trim().split('\n')) {
    const [n, ...g] = line.split(' ').map(Number);
    res[n] = g;
  }
  return res;
}

function ours(threads) {
  addon.setNumThreads(threads);
  const res = {};
  for (const n of sizes) {
    const a = addon.NativeTensor.randUniform([n, n], 1, -1, 1);
    const b = addon.NativeTensor.randUniform([n, n], 1, -1, 1);
    const c = addon.NativeTensor.zeros([n, n]);
    const inner = Math.max(1, Math.floor(4e7 / (2 * n ** 3)));
    for (let i = 0; i < 3; i++) addon.matmul(a, b, c, {});
    const g = [];
    for (let s = 0; s < samples; s++) {
      const t = process.hrtime.bigint();
      for (let i = 0; i < inner; i++) addon.matmul(a, b, c, {});
      const sec = Number(process.hrtime.bigint() - t) / 1e9;
      g.push((2 * n ** 3 * inner) / sec / 1e9);
    }
    res[n] = g;
    a.dispose();
    b.dispose();
    c.dispose();
  }
  addon.setNumThreads(0);
  return res;
}

const kinds = ['ours', 'openblas-avx512', 'openblas-haswell'];
const all = {}; // kind → threads → n → samples
for (const k of kinds) {
  all[k] = {};
  for (const t of threadCounts) {
    all[k][t] = {};
    for (const n of sizes) all[k][t][n] = [];
  }
}
for (let r = 0; r < rounds; r++) {
  for (const t of threadCounts) {
    for (const k of kinds) {
      const res = k === 'ours' ? ours(t) : peer(k, t);
      for (const n of sizes) all[k][t][n].push(...res[n]);
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const info = addon.info();
console.log(`${info.cpu.brand.trim()}, kernel ${info.cpu.kernel}; median of ${rounds}×${samples} samples, GFLOP/s`);
console.log('size  thr   ours  OB-avx512  OB-haswell  ours/avx512  ours/haswell');
const table = [];
for (const n of sizes) {
  for (const t of threadCounts) {
    const o = median(all.ours[t][n]);
    const p = median(all['openblas-avx512'][t][n]);
    const h = median(all['openblas-haswell'][t][n]);
    table.push({ n, threads: t, ours: o, openblasAvx512: p, openblasHaswell: h });
    console.log(
      `${String(n).padStart(4)}  ${t}   ${o.toFixed(1).padStart(6)}  ${p.toFixed(1).padStart(9)}  ${h
        .toFixed(1)
        .padStart(10)}  ${(o / p).toFixed(3).padStart(11)}  ${(o / h).toFixed(3).padStart(12)}`,
    );
  }
  const best = (k) => Math.max(...threadCounts.map((t) => median(all[k][t][n])));
  console.log(
    `${String(n).padStart(4)}  best ${best('ours').toFixed(1).padStart(6)}  ${best('openblas-avx512')
      .toFixed(1)
      .padStart(9)}  ${best('openblas-haswell').toFixed(1).padStart(10)}  ${(best('ours') / best('openblas-avx512'))
      .toFixed(3)
      .padStart(11)}  ${(best('ours') / best('openblas-haswell')).toFixed(3).padStart(12)}`,
  );
}
// On a shared machine the medians carry other people's load; the best sample of each cell is
// the least disturbed estimate of what the code can do (printed for reference only).
console.log('best sample of each cell (GFLOP/s):');
for (const n of sizes)
  for (const t of threadCounts)
    console.log(
      `${String(n).padStart(4)}  ${t}   ` +
        kinds.map((k) => `${k} ${Math.max(...all[k][t][n]).toFixed(1)}`).join('  '),
    );
mkdirSync(new URL('./out/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./out/gemm-vs-openblas.json', import.meta.url),
  JSON.stringify({ cpu: info.cpu, rounds, samples, table, samplesByKind: all }, null, 1),
);
