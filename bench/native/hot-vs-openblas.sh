#!/bin/bash
# Back-to-back ("hot") square NN sgemm: the standalone harness against numpy/OpenBLAS, one round
# after another in the same run. Each number is a median of 3 samples of ~0.2 GFLOP each.
# Usage: sh bench/native/build.sh && bash bench/native/hot-vs-openblas.sh [rounds=3] [sizes="256 512 1024"]
cd "$(dirname "$0")/../.."
rounds=${1:-3}
sizes=${2:-"256 512 1024"}
peer() {  # peer <threads> <avx512|haswell> <n>
  local envs=(OPENBLAS_NUM_THREADS=$1)
  if [ "$2" = avx512 ]; then envs=(-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "${envs[@]}"); fi
  env "${envs[@]}" python3 -c "
import numpy as np, time
n = $3; a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
c = np.empty_like(a)
for _ in range(3): np.matmul(a, b, out=c)
inner = max(1, int(2e8 / (2 * n ** 3))); ts = []
for _ in range(3):
    t = time.perf_counter()
    for _ in range(inner): np.matmul(a, b, out=c)
    ts.append((time.perf_counter() - t) / inner)
ts.sort(); print(round(2 * n ** 3 / ts[1] / 1e9, 1))"
}
echo "GFLOP/s: ours 1t 2t | OpenBLAS-avx512 1t 2t | OpenBLAS-haswell 1t 2t"
for n in $sizes; do
  for r in $(seq "$rounds"); do
    ours=$(bench/out/gemm_check bench 3 "$n" | awk '{print $5}' | tr '\n' ' ')
    echo "n=$n round=$r  ours $ours| avx512 $(peer 1 avx512 "$n") $(peer 2 avx512 "$n") | haswell $(peer 1 haswell "$n") $(peer 2 haswell "$n")"
  done
done
