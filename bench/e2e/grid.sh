#!/usr/bin/env bash
# The lr × damping robustness grid (issue 14's evidence): every optimizer family over its
# learning-rate axis (and its damping axis where it has one), through `compare`, so that every run
# keeps its metrics. Map and table: node bench/e2e/grid-map.mjs OUT [--md].
#   kfac           K-FAC at its defaults (Newton-step clip, damping control): lr × damping
#   kfac-noclip    K-FAC with newton-clip=off: lr × damping
#   kfac-gradclip  K-FAC with newton-clip=off:grad-clip=1: lr × damping
#   adamw          AdamW: lr only
#   shampoo, soap  lr only (the CLI gives them no damping / epsilon option)
# The K-FAC families run as one compare per damping value, the others as one compare each, in
# OUT/<family>/<part>/; PARALLEL=2 runs two compares side by side (each --threads 1).
# Environment (defaults in brackets):
#   FAMILIES       ["kfac adamw kfac-noclip kfac-gradclip shampoo soap"]
#   STEPS          [the task's: lm 200, sst2 300, demo 300]     SEEDS [0]      PARALLEL [1]
#   KFAC_LRS [0.03 0.1 0.3]   KFAC_DAMPINGS [1e-4 1e-3 1e-2]   ADAMW_LRS [3e-4 1e-3 3e-3 1e-2]
#   SHAMPOO_LRS [3e-4 1e-3 3e-3]   SOAP_LRS [1e-3 3e-3 1e-2]
#   EXTRA          more compare options for every run, e.g. "--eval-limit 8" for a smoke run (an
#                  optimizer's own option, e.g. --kfac-method, only with FAMILIES that read it)
# usage: bench/e2e/grid.sh <lm|sst2|demo> [OUT]   (OUT default runs/grid-<task>)
set -euo pipefail
cd "$(dirname "$0")/../.."
task="${1:?usage: grid.sh <lm|sst2|demo> [OUT]}"
out="${2:-runs/grid-$task}"
data="${KFAC_PEFT_DATA:-../shared/data}"
# shellcheck source=bench/e2e/tasks.sh
. bench/e2e/tasks.sh
mkdir -p "$out"
task_setup "$task" "$out"
steps="${STEPS:-$TASK_STEPS}"
seeds="${SEEDS:-0}"
parallel="${PARALLEL:-1}"
read -r -a families <<< "${FAMILIES:-kfac adamw kfac-noclip kfac-gradclip shampoo soap}"
read -r -a kfac_lrs <<< "${KFAC_LRS:-0.03 0.1 0.3}"
read -r -a kfac_dampings <<< "${KFAC_DAMPINGS:-1e-4 1e-3 1e-2}"
read -r -a extra <<< "${EXTRA:-}"

# one job per line: "<family> <part> <runs>"
jobs_list() {
  local fam prefix d runs lr
  for fam in "${families[@]}"; do
    case "$fam" in
      kfac|kfac-noclip|kfac-gradclip)
        case "$fam" in kfac) prefix=kfac ;; kfac-noclip) prefix=kfac:newton-clip=off ;; *) prefix=kfac:newton-clip=off:grad-clip=1 ;; esac
        for d in "${kfac_dampings[@]}"; do
          runs=""
          for lr in "${kfac_lrs[@]}"; do runs="${runs:+$runs,}$prefix:lr=$lr:damping=$d"; done
          echo "$fam damping-$d $runs"
        done ;;
      adamw|shampoo|soap)
        local var; var="$(echo "$fam" | tr a-z A-Z)_LRS"
        local def; case "$fam" in adamw) def="3e-4 1e-3 3e-3 1e-2" ;; shampoo) def="3e-4 1e-3 3e-3" ;; *) def="1e-3 3e-3 1e-2" ;; esac
        runs=""
        for lr in ${!var:-$def}; do runs="${runs:+$runs,}$fam:lr=$lr"; done
        echo "$fam lr $runs" ;;
      *) echo "unknown family: $fam (kfac, kfac-noclip, kfac-gradclip, adamw, shampoo, soap)" >&2; return 2 ;;
    esac
  done
}

job() {
  local fam="$1" part="$2" runs="$3" dir="$out/$1/$2"
  mkdir -p "$dir"
  {
    echo "+ compare $fam/$part: $runs"; uptime
    local rc=0
    node bin/kfac-peft.js compare "${TASK_ARGS[@]}" --runs "$runs" --seeds "$seeds" --steps "$steps" --threads 1 \
      "${extra[@]}" --out "$dir" --overwrite --quiet --json > "$dir/compare-stdout.json" || rc=$?
    uptime; echo "exit $rc"
  } > "$dir.log" 2>&1
}

list="$(jobs_list)"
{
  echo "command: bench/e2e/grid.sh $*"
  echo "env: FAMILIES='${families[*]}' STEPS=$steps SEEDS=$seeds PARALLEL=$parallel EXTRA='${extra[*]}'"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- lib native 2>/dev/null || echo ' (with uncommitted changes under lib/ or native/)')"
  echo "start: $(date -u +%FT%TZ) $(uptime)"
} > "$out/grid-info.txt"
while read -r fam part runs; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  echo "+ $fam/$part ($(date -u +%T))" >&2
  job "$fam" "$part" "$runs" &
done <<< "$list"
wait || true
failed="$(grep -L '^exit 0$' "$out"/*/*.log | wc -l)"
echo "end: $(date -u +%FT%TZ) $(uptime)" >> "$out/grid-info.txt"
if [ "$failed" -gt 0 ]; then
  echo "$failed compare(s) failed: see $out/*/*.log" >&2
  exit 1
fi
echo "done: node bench/e2e/grid-map.mjs $out --md" >&2
