#!/usr/bin/env bash
# Cost per step of every PEFT method on random-init T5 shapes (no download): `kfac-peft bench step`
# with AdamW (and PyTorch + transformers + PEFT's same method on the same weights, --peer torch)
# and with K-FAC + Newton-step clipping at the train defaults, one shape/method/optimizer per run,
# one run at a time. The seq2seq step: batch 4, source 64 + target 16 tokens, --threads 2, two
# warm-up steps, then 2 rounds × 5 timed steps (10 steps: K-FAC's refresh every 10 steps and its
# damping probe every 5 fall inside, so the mean carries them). BitFit is refused on T5 (no
# biases); its .err file says so.
#
# usage: bench/e2e/t5-speed.sh [OUT_DIR] [SHAPES] [METHODS]
#   defaults: runs/t5-speed, shapes "t5-small flan-t5-small", methods "lora adapter prefix prompt ia3 bitfit"
#   KFAC_PEER_PYTHON (env): a python with torch, transformers and peft (else the peer rows are missing)
#   STEP_ARGS (env) replaces the step sizes (default "--batch 4 --seq 64 --target-seq 16 --rounds 2 --steps 5 --threads 2")
# Then: node bench/e2e/t5-speed-table.mjs OUT_DIR  (the BENCHMARKS.md table)
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-runs/t5-speed}"
shapes="${2:-t5-small flan-t5-small}"
methods="${3:-lora adapter prefix prompt ia3 bitfit}"
args="${STEP_ARGS:---batch 4 --seq 64 --target-seq 16 --rounds 2 --steps 5 --threads 2}"
mkdir -p "$out"
: >"$out/status.txt"
echo "uptime before: $(uptime)" | tee "$out/load.txt"
for shape in $shapes; do
  for method in $methods; do
    for opt in adamw kfac; do
      name="$shape-$method-$opt"
      # the torch peer has no K-FAC here (kfac-pytorch is not a dependency): AdamW rows only
      peer=()
      [ "$opt" = adamw ] && peer=(--peer torch)
      # shellcheck disable=SC2086
      node bin/kfac-peft.js bench step --shape "$shape" --peft "$method" --optimizer "$opt" $args "${peer[@]}" --json >"$out/$name.json" 2>"$out/$name.err"
      rc=$?
      [ $rc -eq 0 ] || rm -f "$out/$name.json"
      echo "$name: exit $rc" | tee -a "$out/status.txt"
    done
  done
done
echo "uptime after: $(uptime)" | tee -a "$out/load.txt"
