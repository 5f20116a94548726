# Shared task setup of the evidence scripts (sourced, not run): `task_setup <lm|sst2|demo> <out>`
# prepares the task's data under <out> when it needs preparing and sets
#   TASK_ARGS  the `compare` options of the task (model, data, batch, length, evaluation)
#   TASK_STEPS the step count of the three-seed protocol for that task
# as bench/e2e/defaults.sh's main-lm, main-sst2 and main-demo runs use them.
# Needs $data (the shared data folder) for lm and sst2.
task_setup() {
  local task="$1" out="$2"
  local model="$data/llama2c/stories260K.bin"
  case "$task" in
    lm|sst2) [ -f "$model" ] || { echo "no $model (set KFAC_PEFT_DATA to the shared data folder)" >&2; return 1; } ;;
  esac
  case "$task" in
    lm)   node bench/e2e/sotu-text.mjs "$out/sotu-text" >&2
          TASK_ARGS=(--model "$model" --data "$out/sotu-text" --eval-every 50 --eval-limit 64)
          TASK_STEPS=200 ;;
    sst2) TASK_ARGS=(--model "$model" --data "$data/glue/SST-2" --batch-size 32 --max-length 64 --eval-every 50)
          TASK_STEPS=300 ;;
    demo) local dmodel ddata
          read -r dmodel ddata < <(node bench/e2e/demo-data.mjs "$out/democache")
          TASK_ARGS=(--model "$dmodel" --data "$ddata" --batch-size 16 --max-length 128 --eval-every 50)
          TASK_STEPS=300 ;;
    *) echo "unknown task: $task (lm, sst2 or demo)" >&2; return 2 ;;
  esac
}
