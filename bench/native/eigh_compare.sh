#!/bin/bash
# Interleaved timing of our cold eigh (standalone harness) against scipy ssyevd in both
# OpenBLAS settings, 1 and 2 threads. Columns: round threads n ours_ms scipy_best_ms scipy_haswell_ms
# Usage: bench/native/eigh_compare.sh /path/to/eigh_harness [rounds]
set -e
H=${1:?harness binary}
ROUNDS=${2:-2}
DIR=$(cd "$(dirname "$0")" && pwd)
for round in $(seq 1 "$ROUNDS"); do
  for t in 1 2; do
    for n in 128 256 512 1024; do
      a=$(KFAC_NUM_THREADS=$t nice -n 10 "$H" time $n | awk '{print $5}')
      c=$(OPENBLAS_NUM_THREADS=$t nice -n 10 env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python3 "$DIR/eigh_peer.py" $n | awk '{print $3}')
      d=$(OPENBLAS_NUM_THREADS=$t OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512 nice -n 10 python3 "$DIR/eigh_peer.py" $n | awk '{print $3}')
      echo "$round $t $n $a $c $d"
    done
  done
done
