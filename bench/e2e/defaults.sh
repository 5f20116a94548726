#!/usr/bin/env bash
# Evidence for the K-FAC defaults (BENCHMARKS.md, "K-FAC at its defaults"): every optimizer at its
# default settings on the real stories260K model, seed by seed, 200 steps.
#   sst2    adamw vs kfac (the CLI's default run), seeds from $SEEDS (default 0)
#   grid    SST-2 seed 0: K-FAC with one setting changed at a time (lr, damping, clip off,
#           adaptive damping) and AdamW at 3e-3: the robustness cells that fit on 2 vCPUs
#   lm      LM adaptation (State of the Union prose): adamw vs kfac at defaults, eval every 50
#   peers   SST-2 seed 0: shampoo and soap at their defaults
# The three-seed protocol (seeds 0, 1, 2; every optimizer at its defaults — the cosine schedule with a
# 10% warm-up (K-FAC's default: none), K-FAC with adaptive damping — against AdamW over its grid {1e-3, 3e-3, 1e-2};
# --threads 1 so that runs go side by side):
#   main-lm     LM adaptation, 200 steps of 16 × 128 tokens, perplexity on 64 held-out blocks every 20
#   main-sst2   SST-2, 300 steps of 32 sentences ≤ 64 tokens, accuracy on the 872 dev rows every 25
#   main-demo   the demo's era task on its pretrained model, 300 steps of 16, accuracy every 25
#   main-demo1024  the same on 1024 dev rows (256 per class: bench/e2e/demo-data.mjs --dev-per-class), seeds 0–5
#   ablation    LM adaptation, seed 0: the Newton clip off / global / Fisher, fixed damping, the eigen method,
#               the r×r factors refreshed with the others (small-factor-dim 0),
#               the adaptive step length, the constant schedule (against main-lm's defaults)
#   kfac-lm, kfac-sst2, kfac-demo   the main-* protocol for K-FAC alone: the defaults (EKFAC) and the eigen
#               method (--kfac-method eigen), to pool with a main-* folder's AdamW rows (AdamW is unchanged by them)
#   parts-lm, parts-sst2, parts-demo   the main-* protocol for the parts of the Nesterov defaults (Nesterov
#               momentum of the clipped steps and κ 0.0125): the defaults before them (κ 0.01, heavy-ball), each part alone
#   momentum-lm, momentum-sst2, momentum-demo, momentum-demo1024   the main-* protocol for today's order of momentum
#               and preconditioning: the Nesterov defaults (--momentum-of step), the momentum of the gradients
#               with the 10% warm-up it had when it became the default (κ 0.035) and its κ screen (0.025, 0.05, 0.1)
#   warmup-lm, warmup-sst2, warmup-demo, warmup-demo1024   the main-* protocol for the warm-up: K-FAC with the
#               10% warm-up (the defaults before it went) and AdamW at the task's tuned rate without one
#   wall-lm, wall-sst2, wall-demo, wall-demo1024   wall-clock on a quiet machine: AdamW at the task's tuned rate, K-FAC at its
#               defaults (EKFAC) and the eigen method, ONE RUN AT A TIME (nothing else may run), each seed of
#               $SEEDS into its own folder
# SEEDS (default 0,1,2) picks the seeds of the main-*, kfac-*, parts-*, momentum-*, warmup-* and wall-* modes, e.g. SEEDS=2 to run one seed apart.
# Tables: node bench/e2e/defaults-table.mjs OUT_ROOT/<task> [more folders of the same task]
# usage: bench/e2e/defaults.sh <sst2|grid|lm|peers|main-*|kfac-*|parts-*|momentum-*|warmup-*|wall-*|ablation> [OUT_ROOT]
set -euo pipefail
cd "$(dirname "$0")/../.."
which="${1:?usage: defaults.sh <sst2|grid|lm|peers|main-lm|main-sst2|main-demo|ablation> [OUT_ROOT]}"
out="${2:-runs/defaults}"
data="${KFAC_PEFT_DATA:-../shared/data}"
model="$data/llama2c/stories260K.bin"
[ -f "$model" ] || { echo "no $model (set KFAC_PEFT_DATA to the shared data folder)" >&2; exit 1; }
run() { echo "+ $*" >&2; uptime >&2; node bin/kfac-peft.js "$@"; uptime >&2; }
# the compare options of each task's three-seed protocol (model, data, steps, batch, evaluation),
# W10 its 10% warm-up in steps and BASE AdamW at its tuned rate
task_args() {
  W10=30 BASE=adamw:lr=3e-3
  case "$1" in
    lm)   node bench/e2e/sotu-text.mjs "$out/sotu-text" >&2
          W10=20 BASE=adamw:lr=1e-2
          TA=(--model "$model" --data "$out/sotu-text" --steps 200 --eval-every 20 --eval-limit 64) ;;
    sst2) TA=(--model "$model" --data "$data/glue/SST-2" --steps 300 --batch-size 32 --max-length 64 --eval-every 25) ;;
    demo|demo1024) local dmodel ddata dev=()
          [ "$1" = demo1024 ] && dev=(--dev-per-class 256)
          read -r dmodel ddata < <(node bench/e2e/demo-data.mjs "$out/democache" "${dev[@]}")
          TA=(--model "$dmodel" --data "$ddata" --steps 300 --batch-size 16 --max-length 128 --eval-every 25) ;;
  esac
}
case "$which" in
  sst2) run compare --model "$model" --data "$data/glue/SST-2" --runs adamw,kfac --seeds "${SEEDS:-0}" --steps 200 --eval-every 50 --out "$out/sst2" --overwrite --quiet --json ;;
  grid) run compare --model "$model" --data "$data/glue/SST-2" --steps 200 --out "$out/grid" --overwrite --quiet --json \
          --runs "kfac:adaptive-damping=on,kfac:lr=0.3,kfac:lr=0.03,kfac:damping=1e-2,kfac:damping=1e-4,kfac:newton-clip=off:damping=1e-2,adamw:lr=3e-3" ;;
  lm)   node bench/e2e/sotu-text.mjs "$out/sotu-text"
        run compare --model "$model" --data "$out/sotu-text" --runs adamw,kfac --steps 200 --eval-every 50 --eval-limit 64 --out "$out/lm" --overwrite --quiet --json ;;
  peers) run compare --model "$model" --data "$data/glue/SST-2" --runs shampoo,soap,kfac:kfac-method=eigen --steps 200 --out "$out/peers" --overwrite --quiet --json ;;
  main-lm) node bench/e2e/sotu-text.mjs "$out/sotu-text"
        run compare --model "$model" --data "$out/sotu-text" --runs kfac,adamw:lr=1e-3,adamw:lr=3e-3,adamw:lr=1e-2 --seeds "${SEEDS:-0,1,2}" \
          --steps 200 --eval-every 20 --eval-limit 64 --threads 1 --out "$out/main-lm${SEEDS:+-$SEEDS}" --overwrite --quiet --json ;;
  main-sst2) run compare --model "$model" --data "$data/glue/SST-2" --runs kfac,adamw:lr=1e-3,adamw:lr=3e-3,adamw:lr=1e-2 --seeds "${SEEDS:-0,1,2}" \
          --steps 300 --batch-size 32 --max-length 64 --eval-every 25 --threads 1 --out "$out/main-sst2${SEEDS:+-$SEEDS}" --overwrite --quiet --json ;;
  main-demo) read -r dmodel ddata < <(node bench/e2e/demo-data.mjs "$out/democache")
        run compare --model "$dmodel" --data "$ddata" --runs kfac,adamw:lr=1e-3,adamw:lr=3e-3,adamw:lr=1e-2 --seeds "${SEEDS:-0,1,2}" \
          --steps 300 --batch-size 16 --max-length 128 --eval-every 25 --threads 1 --out "$out/main-demo${SEEDS:+-$SEEDS}" --overwrite --quiet --json ;;
  main-demo1024) task_args demo1024
        # the main-demo protocol evaluated on 1024 dev rows (256 per class) instead of 256, seeds 0–5
        run compare "${TA[@]}" --runs kfac,adamw:lr=1e-3,adamw:lr=3e-3,adamw:lr=1e-2 --seeds "${SEEDS:-0,1,2,3,4,5}" --threads 1 \
          --out "$out/main-demo1024${SEEDS:+-$SEEDS}" --overwrite --quiet --json ;;
  ablation) node bench/e2e/sotu-text.mjs "$out/sotu-text"
        run compare --model "$model" --data "$out/sotu-text" --steps 200 --eval-every 20 --eval-limit 64 --threads 1 --out "$out/lm-ablation" --overwrite --quiet --json \
          --runs "kfac:newton-clip=off,kfac:newton-clip-mode=global,kfac:newton-clip-mode=fisher:newton-clip=1e-3,kfac:adaptive-damping=off,kfac:kfac-method=eigen,kfac:small-factor-dim=0,kfac:adaptive-trust=on,kfac:schedule=constant:warmup=0" ;;
  parts-lm|parts-sst2|parts-demo) task="${which#parts-}"; task_args "$task"
        # the two parts of the Nesterov defaults apart, and the defaults before them (all with the momentum of the steps)
        run compare "${TA[@]}" --runs kfac:momentum-of=step:trust-ratio=0.01:nesterov=off,kfac:momentum-of=step:trust-ratio=0.01,kfac:momentum-of=step:nesterov=off --seeds "${SEEDS:-0,1,2}" --threads 1 \
          --out "$out/parts-$task${SEEDS:+-$SEEDS}" --overwrite --quiet --json ;;
  momentum-lm|momentum-sst2|momentum-demo|momentum-demo1024) task="${which#momentum-}"; task_args "$task"
        # the Nesterov defaults (the momentum of the clipped steps, κ 0.0125, a 10% warm-up) and κ of the momentum
        # of the gradients, with the 10% warm-up the defaults had then
        w=":warmup=$W10"
        run compare "${TA[@]}" --runs "kfac:momentum-of=step,kfac$w,kfac:trust-ratio=0.025$w,kfac:trust-ratio=0.05$w,kfac:trust-ratio=0.1$w" --seeds "${SEEDS:-0,1,2}" --threads 1 \
          --out "$out/momentum-$task${SEEDS:+-$SEEDS}" --overwrite --quiet --json ;;
  warmup-lm|warmup-sst2|warmup-demo|warmup-demo1024) task="${which#warmup-}"; task_args "$task"
        # K-FAC with the 10% warm-up (the defaults before it went) and AdamW at its tuned rate without a warm-up
        run compare "${TA[@]}" --runs "kfac:warmup=$W10,$BASE:warmup=0" --seeds "${SEEDS:-0,1,2}" --threads 1 \
          --out "$out/warmup-$task${SEEDS:+-$SEEDS}" --overwrite --quiet --json ;;
  kfac-lm|kfac-sst2|kfac-demo) task="${which#kfac-}"; task_args "$task"
        run compare "${TA[@]}" --runs kfac,kfac:kfac-method=eigen --seeds "${SEEDS:-0,1,2}" --threads 1 --out "$out/kfac-$task${SEEDS:+-$SEEDS}" --overwrite --quiet --json ;;
  wall-lm|wall-sst2|wall-demo|wall-demo1024) task="${which#wall-}"; task_args "$task"
        base="$BASE"
        for seed in $(echo "${SEEDS:-0,1,2}" | tr , ' '); do
          for r in "$base" kfac kfac:kfac-method=eigen; do
            case "$r" in adamw*) name=adamw ;; kfac) name=kfac ;; *) name=eigen ;; esac
            run compare "${TA[@]}" --runs "$r" --seeds "$seed" --threads 1 --out "$out/wall-$task/seed$seed-$name" --overwrite --quiet --json > /dev/null
          done
        done
        echo "table: node bench/e2e/defaults-table.mjs $out/wall-$task/seed*" >&2 ;;
  *) echo "unknown: $which" >&2; exit 2 ;;
esac
