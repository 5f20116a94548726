#!/usr/bin/env bash
# Every PEFT method on the real stories260K model, SST-2 with a classification head (dev
# accuracy): AdamW over {1e-3, 3e-3, 1e-2} and K-FAC + Newton-step clipping at its defaults, one
# `kfac-peft compare` per method, --threads 1, at most two methods at a time (the machine is
# shared). BitFit is refused on this model (LLaMA has no biases); its log says so.
#
# usage: bench/e2e/methods.sh [OUT_ROOT] [SEEDS] [STEPS] [METHODS]
#   defaults: runs/methods, seeds 1, 200 steps, methods "lora ia3 bitfit adapter prefix prompt"
#   RUNS (env) replaces the compared runs (default "adamw:lr=1e-3,adamw:lr=3e-3,adamw:lr=1e-2,kfac")
# Then: node bench/e2e/methods-table.mjs OUT_ROOT  (the BENCHMARKS.md table)
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-runs/methods}"
seeds="${2:-1}"
steps="${3:-200}"
methods="${4:-lora ia3 bitfit adapter prefix prompt}"
data="${KFAC_PEFT_DATA:-../shared/data}"
model="$data/llama2c/stories260K.bin"
[ -f "$model" ] || { echo "no $model (set KFAC_PEFT_DATA to the shared data folder)" >&2; exit 1; }
mkdir -p "$out"
run() {
  node bin/kfac-peft.js compare --model "$model" --data "$data/glue/SST-2" --peft "$1" \
    --runs "${RUNS:-adamw:lr=1e-3,adamw:lr=3e-3,adamw:lr=1e-2,kfac}" --seeds "$seeds" --steps "$steps" --eval-every 50 \
    --batch-size 32 --max-length 64 --threads 1 --out "$out/$1" --overwrite --quiet >"$out/$1.log" 2>&1
  echo "$1: exit $?" >>"$out/status.txt"
}
set -- $methods
while [ $# -gt 0 ]; do
  run "$1" &
  if [ $# -gt 1 ]; then run "$2" & shift; fi
  shift
  wait
done
cat "$out/status.txt"
