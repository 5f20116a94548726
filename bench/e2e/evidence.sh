#!/usr/bin/env bash
# The first evidence (BENCHMARKS.md, "Fine-tuning evidence"): the real stories260K model on
#   (a) SST-2 with a classification head (dev accuracy) and
#   (b) causal-LM adaptation to State of the Union prose (held-out perplexity),
# AdamW over a learning-rate grid, K-FAC, K-FAC + Newton-step clipping and K-FAC + gradient
# clipping, 3 seeds each, through `kfac-peft compare`.
#
# usage: bench/e2e/evidence.sh <sst2|lm|all> [OUT_ROOT] [extra compare flags…]
# Needs the shared data folder (KFAC_PEFT_DATA, default ../shared/data) and a built tree
# (npm ci). Each task takes about 20–30 minutes on 2 vCPUs.
set -euo pipefail
cd "$(dirname "$0")/../.."
which="${1:-all}"
out="${2:-runs/evidence}"
shift $(( $# > 2 ? 2 : $# )) || true
data="${KFAC_PEFT_DATA:-../shared/data}"
model="$data/llama2c/stories260K.bin"
[ -f "$model" ] || { echo "no $model (set KFAC_PEFT_DATA to the shared data folder)" >&2; exit 1; }
adamw="adamw:lr=1e-3,adamw:lr=3e-3,adamw:lr=1e-2"
# K-FAC settings (lr, damping, Newton-clip threshold) from short sweeps on seed 0 of each task
# (BENCHMARKS.md); the unclipped and gradient-clipped ablations use the same lr and damping.
kfac() { echo "kfac:lr=$1:damping=$2,kfac:lr=$1:damping=$2:newton-clip=$3,kfac:lr=$1:damping=$2:grad-clip=1"; }

if [ "$which" = sst2 ] || [ "$which" = all ]; then
  node bin/kfac-peft.js compare --model "$model" --data "$data/glue/SST-2" --runs "$adamw,$(kfac 0.1 0.01 0.1)" --seeds 1,2,3 \
    --steps 600 --eval-every 50 --batch-size 32 --max-length 64 --out "$out/sst2" --overwrite --quiet "$@"
fi
if [ "$which" = lm ] || [ "$which" = all ]; then
  node bench/e2e/sotu-text.mjs "$out/sotu-text"
  node bin/kfac-peft.js compare --model "$model" --data "$out/sotu-text" --runs "$adamw,$(kfac 0.3 0.001 0.3)" --seeds 1,2,3 \
    --steps 400 --eval-every 40 --batch-size 16 --max-length 128 --eval-limit 64 --target-modules all-linear \
    --out "$out/lm" --overwrite --quiet "$@"
fi
