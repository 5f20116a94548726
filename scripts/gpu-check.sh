#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a machine with an NVIDIA GPU, nvcc, cuBLAS/cuSOLVER
# and (optionally) PyTorch, but no Node and no network. Prepare the carry on a machine with
# Node first: scripts/gpu-bundle.sh (writes build-gpu/bundle.tar.xz). Then, in the repository
# root of the GPU machine:
#
#   scripts/gpu-check.sh            (OUT=dir for the results; default build-gpu/out;
#                                    GPU_CHECK_FORCE_UNPACK=1 uses the bundle even where Node exists)
#
# It unpacks node, dist/ and node_modules, builds the CUDA addon (scripts/build-cuda.mjs),
# runs the CPU-vs-CUDA parity checks with `node --test` (a missing device fails them),
# runs 50 steps of K-FAC with Newton-step clipping on LoRA adapters of stories260K on the CPU
# and on the device, loaded straight to it (test/cuda/train-check.mjs: losses within 1e-4
# relative at step 0 and 1e-2 after, argued there; the model from STORIES260K, else
# ../shared/data/llama2c/stories260K.bin; if an nn op lacks a cuda kernel this step fails
# with the op's "has no cuda kernel" error), then `kfac-peft bench train-step` at 125M, 1B and 3B
# (K-FAC + NSC, which also times AdamW on the same model for the ratio; bf16 base weights,
# seq 512, batch 8 (4 at 3B, with gradient checkpointing); PyTorch + PEFT as the peer when
# torch imports),
# runs `kfac-peft bench ceilings|factor|eigh|batched-eigh|precondition|clip|attention|refresh --backend cuda`
# (GB/s and GFLOP/s against the copy and SGEMM ceilings of the same run; torch.linalg.eigh as
# eigh's and attention's peer when PyTorch imports; attention on tensor cores against the bf16
# GEMM peak), and writes $OUT/gpu-check.json with everything and the
# targets met or not. Budget: one 10-minute run (each step has its own timeout).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build-gpu/out}
mkdir -p "$OUT"
log() { echo "[gpu-check $(date +%H:%M:%S)] $*" | tee -a "$OUT/gpu-check.log"; }
T0=$(date +%s)

# 1. Node, dist/ and node_modules from the bundle (unless this machine has them).
if [ "${GPU_CHECK_FORCE_UNPACK:-0}" = 1 ] || ! command -v node >/dev/null 2>&1 || [ ! -d node_modules/cmake-js ]; then
  if [ ! -f build-gpu/bundle.tar.xz ]; then log "no node and no build-gpu/bundle.tar.xz: run scripts/gpu-bundle.sh where Node is"; exit 2; fi
  rm -rf build-gpu/unpacked && mkdir -p build-gpu/unpacked
  tar -xJf build-gpu/bundle.tar.xz -C build-gpu/unpacked || { log "unpacking failed"; exit 2; }
  rm -rf dist node_modules
  mv build-gpu/unpacked/dist dist
  mv build-gpu/unpacked/node_modules node_modules
  export PATH="$PWD/build-gpu/unpacked/bin:$PATH"
fi
log "node $(node --version) at $(command -v node); cmake $(cmake --version 2>/dev/null | head -1 | awk '{print $3}')"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv,noheader > "$OUT/nvidia-smi.txt" 2>&1 || true
log "gpu: $(cat "$OUT/nvidia-smi.txt")"

# 2. Build.
CUDA_ROOT=$(node scripts/find-cuda.mjs 2>"$OUT/find-cuda.err") || { log "no usable toolkit: $(cat "$OUT/find-cuda.err")"; }
B0=$(date +%s)
timeout "${GPU_CHECK_BUILD_TIMEOUT:-300}" node scripts/build-cuda.mjs -j "${GPU_CHECK_JOBS:-$(nproc)}" > "$OUT/build.log" 2>&1
BUILD_RC=$?
BUILD_S=$(( $(date +%s) - B0 ))
log "build rc=$BUILD_RC in ${BUILD_S}s (toolkit ${CUDA_ROOT:-none})"
LIBDIR=$(node -e "import('./scripts/find-cuda.mjs').then(m => console.log(m.findCuda().libDir ?? ''))")
export LD_LIBRARY_PATH="${LIBDIR:+$LIBDIR:}${LD_LIBRARY_PATH:-}"
export KFAC_PEFT_CUDA_BINARY="$PWD/build-cuda/Release/kfac_peft_cuda.node"
node bin/kfac-peft.js doctor --json > "$OUT/doctor.json" 2> "$OUT/doctor.err"
log "doctor: $(node bin/kfac-peft.js doctor 2>&1 | tail -1)"

# 3. Parity (node's own test runner; KFAC_REQUIRE_GPU=1 makes a missing device a failure).
timeout 240 env KFAC_BACKEND=cuda KFAC_REQUIRE_GPU="${KFAC_REQUIRE_GPU:-1}" node --test --test-reporter=tap test/cuda/node-test.mjs > "$OUT/parity.tap" 2>&1
PARITY_RC=$?
log "parity rc=$PARITY_RC: $(grep -E '^# (pass|fail|skipped)' "$OUT/parity.tap" | tr '\n' ' ')"

# 3b. Training on the device: 50 K-FAC + NSC steps of stories260K, losses against the CPU's.
STORIES=${STORIES260K:-}
[ -z "$STORIES" ] && [ -n "${KFAC_PEFT_DATA:-}" ] && STORIES="$KFAC_PEFT_DATA/llama2c/stories260K.bin"
[ -z "$STORIES" ] && STORIES=../shared/data/llama2c/stories260K.bin
if [ -f "$STORIES" ]; then
  timeout 240 env KFAC_BACKEND=cuda node test/cuda/train-check.mjs "$STORIES" --steps 50 > "$OUT/train.json" 2> "$OUT/train.err"
  TRAIN_RC=$?
else
  echo "{\"ok\":false,\"reason\":\"no stories260K.bin at $STORIES (set STORIES260K)\"}" > "$OUT/train.json"
  TRAIN_RC=2
fi
case $TRAIN_RC in
  0) log "train rc=0: 50 steps on the device, losses within tolerance of the CPU's" ;;
  3) log "train rc=3: FAILED, an op the step needs has no cuda kernel ($(node -e "try{console.log(JSON.parse(require('fs').readFileSync('$OUT/train.json','utf8')).error)}catch{}"))" ;;
  2) log "train rc=2: skipped ($(head -c 200 "$OUT/train.json"))" ;;
  *) log "train rc=$TRAIN_RC: FAILED ($(head -c 400 "$OUT/train.json") $(tail -2 "$OUT/train.err"))" ;;
esac

# 3c. One LoRA training step at real sizes (random init): 125M, 1B, 3B. Reported, not part of the verdict.
PEER_ARGS=()
for py in "${KFAC_PEER_PYTHON:-}" python3; do
  [ -n "$py" ] && "$py" -c 'import torch, transformers, peft' >/dev/null 2>&1 && { export KFAC_PEER_PYTHON="$py"; PEER_ARGS=(--peer torch); break; }
done
train_step() { # name timeout args…
  local name=$1 limit=$2; shift 2
  timeout "$limit" env KFAC_BACKEND=cuda node bin/kfac-peft.js bench train-step --device cuda --dtype bfloat16 --optimizer kfac "${PEER_ARGS[@]}" --json "$@" > "$OUT/train-step-$name.json" 2> "$OUT/train-step-$name.err"
  log "bench train-step $name rc=$? ($(node -e "try{const r=JSON.parse(require('fs').readFileSync('$OUT/train-step-$name.json','utf8'));console.log(r.stepMs.median.toFixed(1)+' ms, '+r.tokensPerSecond.toFixed(0)+' tokens/s, kfac/adamw '+(r.kfacOverAdamw??NaN).toFixed(3)+', host waits/step '+(r.hostSyncsPerStep?.run??NaN).toFixed(1))}catch{console.log('no report')}"))"
}
train_step llama-125m 75 --shape llama-125m --seq 512 --batch 8 --steps 5 --warmup 1
train_step llama-1b 100 --shape llama-1b --seq 512 --batch 8 --steps 5 --warmup 1
train_step llama-3b 130 --shape llama-3b --seq 512 --batch 4 --steps 3 --warmup 1 --gradient-checkpointing
# bf16 activations (docs/CUDA.md, mixed precision) beside the float32-activation 125M row above, and
# BERT-base with them (a bidirectional encoder, its classification head in float32); no peer
SAVED_PEER_ARGS=("${PEER_ARGS[@]}"); PEER_ARGS=()
train_step llama-125m-bf16act 60 --shape llama-125m --seq 512 --batch 8 --steps 5 --warmup 1 --activations bfloat16
train_step bert-base-bf16act 60 --shape bert-base --seq 512 --batch 8 --steps 5 --warmup 1 --activations bfloat16
PEER_ARGS=("${SAVED_PEER_ARGS[@]}")

# 4. Benchmarks (each writes its JSON report).
for c in ceilings factor eigh batched-eigh precondition clip attention; do
  timeout 150 env KFAC_BACKEND=cuda node bin/kfac-peft.js bench "$c" --backend cuda --repeats 10 --json --out "$OUT/bench-$c.json" > /dev/null 2> "$OUT/bench-$c.err"
  log "bench $c rc=$?"
done
# the eigenbasis refresh at two 3B all-linear LoRA factor sizes (hidden 2560, MLP 8640): the warm
# refresh (or its fallback) against the cold syevd, three of each (repeats are at least 3)
timeout 120 env KFAC_BACKEND=cuda node bin/kfac-peft.js bench refresh --backend cuda --sizes 2560,8640 --repeats 1 --json --out "$OUT/bench-refresh.json" > /dev/null 2> "$OUT/bench-refresh.err"
log "bench refresh rc=$?"
timeout 60 env KFAC_BACKEND=cuda node bench/add-norm-fusion.mjs 1 cuda > "$OUT/add-norm-fusion.txt" 2>&1
log "add-norm fusion rc=$?: $(tr '\n' ' ' < "$OUT/add-norm-fusion.txt" | head -c 400)"

# 5. Summary.
node - "$OUT" "$BUILD_RC" "$BUILD_S" "$PARITY_RC" "$(( $(date +%s) - T0 ))" "$TRAIN_RC" > "$OUT/gpu-check.json" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [out, buildRc, buildS, parityRc, totalS, trainRc] = process.argv.slice(2);
const read = (f) => { try { return JSON.parse(fs.readFileSync(path.join(out, f), 'utf8')); } catch { return null; } };
const text = (f) => { try { return fs.readFileSync(path.join(out, f), 'utf8'); } catch { return ''; } };
const tap = text('parity.tap');
const count = (k) => Number((tap.match(new RegExp(`^# ${k} (\\d+)`, 'm')) ?? [])[1] ?? NaN);
const bench = {};
for (const c of ['ceilings', 'factor', 'eigh', 'batched-eigh', 'precondition', 'clip', 'attention', 'refresh']) bench[c] = read(`bench-${c}.json`)?.rows ?? { error: text(`bench-${c}.err`).trim().split('\n').slice(-3).join('\n') };
const trainStep = {};
for (const s of ['llama-125m', 'llama-1b', 'llama-3b', 'llama-125m-bf16act', 'bert-base-bf16act']) trainStep[s] = read(`train-step-${s}.json`) ?? { error: text(`train-step-${s}.err`).trim().split('\n').slice(-3).join('\n') || 'no report (timed out?)' };
const rows = (c) => (Array.isArray(bench[c]) ? bench[c] : []);
const targets = {
  'clip ≥ 80% of copy bandwidth': rows('clip').filter((r) => /clipping/.test(r.shape)).map((r) => ({ shape: r.shape, ofCeiling: r.ofCeiling, met: r.ofCeiling >= 0.8 })),
  'factor EMA ≥ 80% of copy bandwidth (bandwidth-bound R=32, and the guarded commit)': rows('factor').filter((r) => /R=32 |commit/.test(r.shape)).map((r) => ({ shape: r.shape, ofCeiling: r.ofCeiling, met: r.ofCeiling >= 0.8 })),
  'eigh no slower than torch.linalg.eigh (n = 256…4096)': rows('eigh').map((r) => ({ shape: r.shape, ms: r.ms, torchMs: r.peerMs ?? null, met: r.ratio === undefined ? null : r.ratio >= 1 })),
  'batched 8×8 and 16×16 ≥ 10× a loop': rows('batched-eigh').filter((r) => /x(8|16)x/.test(r.shape)).map((r) => ({ shape: r.shape, speedup: r.ratio, met: r.ratio >= 10 })),
  'attention fwd+bwd ≥ 50% of the bf16 peak at T = 2048 (tensor cores)': rows('attention').filter((r) => /^fwd\+bwd .*T=2048 .*tensor cores/.test(r.shape)).map((r) => ({ shape: r.shape, ofCeiling: r.ofCeiling, torchMs: r.peerMs ?? null, met: r.ofCeiling >= 0.5 })),
  '3B K-FAC+NSC step ≤ 1.15× AdamW': trainStep['llama-3b']?.kfacOverAdamw === undefined ? null : { ratio: trainStep['llama-3b'].kfacOverAdamw, met: trainStep['llama-3b'].kfacOverAdamw <= 1.15 },
  '3B GEMMs ≥ 40% of the bf16 peak': trainStep['llama-3b']?.gemmTflops == null || trainStep['llama-3b']?.peakBf16Tflops == null ? null : { ofPeak: trainStep['llama-3b'].gemmTflops / trainStep['llama-3b'].peakBf16Tflops, met: trainStep['llama-3b'].gemmTflops / trainStep['llama-3b'].peakBf16Tflops >= 0.4 },
  '3B tokens/s ≥ PyTorch + PEFT': trainStep['llama-3b']?.peer == null ? null : { ours: trainStep['llama-3b'].tokensPerSecond, torch: trainStep['llama-3b'].peer.tokensPerSecond, met: trainStep['llama-3b'].tokensPerSecond >= trainStep['llama-3b'].peer.tokensPerSecond },
  // reported, not a target: what a refresh of the large factors costs at 3B sizes, warm against cold
  'eigenbasis refresh at the 3B factor sizes (reported: warm or its fallback vs cold syevd)': rows('refresh').map((r) => ({ shape: r.shape, warmMs: r.ms, coldMs: r.peerMs, note: r.note })),
  // reported, not a target: counted in the code, a step without a refresh waits 2 times with
  // K-FAC (the step record, the loss in it; the bench's own wait) and 2 with AdamW (the loss,
  // the bench's wait); the mean over the ten timed steps adds the one refresh's reads
  // (docs/KFAC.md#one-read-per-step)
  'host waits per step (expected: K-FAC 2 plus the refresh share, AdamW 2)': Object.fromEntries(Object.entries(trainStep).map(([k, r]) => [k, r?.hostSyncsPerStep ?? null])),
};
console.log(JSON.stringify({
  when: new Date().toISOString(),
  gpu: text('nvidia-smi.txt').trim(),
  node: process.version,
  seconds: Number(totalS),
  build: { rc: Number(buildRc), seconds: Number(buildS), log: text('build.log').trim().split('\n').slice(-5) },
  doctor: read('doctor.json'),
  parity: { rc: Number(parityRc), pass: count('pass'), fail: count('fail'), skipped: count('skipped'), failures: tap.split('\n').filter((l) => /^not ok/.test(l)) },
  train: { rc: Number(trainRc), ...(read('train.json') ?? { error: text('train.err').trim().split('\n').slice(-3).join('\n') }) },
  trainStep,
  ceilings: rows('ceilings'),
  addNormFusion: text('add-norm-fusion.txt').trim().split('\n'),
  bench,
  targets,
}, null, 2));
JS
log "summary: $OUT/gpu-check.json ($(( $(date +%s) - T0 ))s in all)"
# The verdict: build, parity and the training step (rc 2: no data, skipped; rc 3: an op the step
# needs has no cuda kernel — every nn op has one now, so that is a regression; any other non-zero
# rc fails the check too).
[ "$BUILD_RC" = 0 ] && [ "$PARITY_RC" = 0 ] && { [ "$TRAIN_RC" = 0 ] || [ "$TRAIN_RC" = 2 ]; }
