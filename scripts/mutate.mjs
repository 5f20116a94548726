#!/usr/bin/env node
/**
 * Mutation smoke run: breaks the code on purpose at a fixed list of high-value spots, one at a
 * time, and checks that the tests that should notice do notice.
 *
 *   npm run test:mutate                      # every mutation
 *   npm run test:mutate -- --only a,b        # some of them (ids from --list)
 *   npm run test:mutate -- --list            # the list (and whether every snippet is still there), nothing run
 *   npm run test:mutate -- --only id --tests test/x.test.ts --filter 'name'   # other tests for those mutations
 *   npm run test:mutate -- --verbose         # print the test output of every mutation
 *
 * Each mutation replaces one exact snippet of one file (it must occur exactly once), rebuilds
 * what the tests load (the native addon when a native file changed, dist/ when the tests run the
 * CLI binary), runs only the listed test files (vitest --bail 1), and restores the file —
 * always: on success, failure, a thrown error, Ctrl-C or SIGTERM. The addon and dist/ are
 * rebuilt after a restore, so the tree is left as it was found. A mutation is "caught" when the
 * tests fail; the run exits 1 if any mutation is missed (or its snippet is no longer found:
 * update the list when the code moves). See docs/TESTING.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * @typedef {{ id: string, file: string, from: string, to: string, tests: string[], filter?: string, dist?: boolean, what: string }} Mutation
 * `filter`: a vitest -t pattern (only the tests whose names match run). `dist`: the tests run the
 * CLI binary, so dist/ is rebuilt with the mutation in place.
 * @type {Mutation[]}
 */
const MUTATIONS = [
  // Newton-step clipping (native/core/kfac_ops.cpp)
  {
    id: 'clip-fisher-sign',
    what: 'Fisher-norm clip uses the signed ⟨P, ∇W⟩ instead of its magnitude',
    file: 'native/cpu/kernels.cpp',
    from: 'double q = opt.lr * opt.lr * std::fabs(sum);',
    to: 'double q = opt.lr * opt.lr * sum;',
    tests: ['test/kfac/kfac-kernels.test.ts'],
    filter: 'clipNewtonStep',
  },
  {
    id: 'clip-global-scale',
    what: 'global clip scales by √(τ/‖P‖) instead of τ/‖P‖',
    file: 'native/cpu/kernels.cpp',
    from: 'double s = r.total_norm > opt.max_norm ? opt.max_norm / r.total_norm : 1.0;',
    to: 'double s = r.total_norm > opt.max_norm ? std::sqrt(opt.max_norm / r.total_norm) : 1.0;',
    tests: ['test/kfac/kfac-kernels.test.ts'],
    filter: 'clipNewtonStep',
  },
  {
    id: 'clip-per-tensor-norm',
    what: 'per-tensor clip judges each tensor by the global norm',
    file: 'native/cpu/kernels.cpp',
    from: 'r.scales[i] = r.norms[i] > opt.max_norm ? opt.max_norm / r.norms[i] : 1.0;',
    to: 'r.scales[i] = r.total_norm > opt.max_norm ? opt.max_norm / r.total_norm : 1.0;',
    tests: ['test/kfac/kfac-kernels.test.ts'],
    filter: 'clipNewtonStep',
  },
  {
    id: 'clip-avx2-dot',
    what: "the AVX2 ⟨P, ∇W⟩ reduction reads the wrong ∇W block (only the avx2 kernel's run sees it)",
    file: 'native/cpu/clip.cpp',
    from: 'a3 = _mm256_fmadd_pd(x3, _mm256_cvtps_pd(_mm_loadu_ps(y + i + 12)), a3);',
    to: 'a3 = _mm256_fmadd_pd(x3, _mm256_cvtps_pd(_mm_loadu_ps(y + i + 8)), a3);',
    tests: ['test/kfac/kfac-kernels.test.ts'],
    filter: 'clipNewtonStep',
  },
  {
    id: 'eigh-avx2-symv',
    what: "the AVX2 symmetric product of the tridiagonal reduction reads the wrong x block (only the avx2 kernel's run sees it)",
    file: 'native/cpu/eigh_blas.cpp',
    from: 's1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(x + i + 8), s1);',
    to: 's1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(x + i), s1);',
    tests: ['test/linalg/eigh.test.ts'],
    filter: 'each CPU kernel',
  },
  // Curvature factors
  {
    id: 'factor-scale',
    what: 'factor update ignores its scale (G loses the N² of a mean-reduced loss)',
    file: 'native/cpu/kernels.cpp',
    from: 'double alpha = (1.0 - double(opt.beta)) * opt.scale / double(R);',
    to: 'double alpha = (1.0 - double(opt.beta)) / double(R);',
    tests: ['test/kfac/kfac-kernels.test.ts'],
    filter: 'updateFactor',
  },
  {
    id: 'factor-bias-column',
    what: 'the implicit ones column of a biased layer is packed as zeros on one side',
    file: 'native/cpu/syrk.cpp',
    from: 'if (real < m) dst[real] = 1.f;',
    to: 'if (real < m) dst[real] = 0.f;',
    tests: ['test/kfac/kfac-kernels.test.ts'],
    filter: 'updateFactor',
  },
  {
    id: 'factor-beta-zero',
    what: 'β = 0 multiplies the old factor by 0 instead of never reading it (0·NaN = NaN)',
    file: 'native/cpu/syrk.cpp',
    from: 'if (beta == 0.f)\n          for (int64_t q = 0; q < lim; ++q) cr[q] = tr[q];',
    to: 'if (beta == 0.f)\n          for (int64_t q = 0; q < lim; ++q) cr[q] = tr[q] + beta * cr[q];',
    tests: ['test/kfac/kfac-kernels.test.ts'],
    filter: 'updateFactor',
  },
  // Preconditioning (native/cpu/precondition.cpp)
  {
    id: 'damping-add',
    what: 'eigen preconditioning adds λ/2 instead of λ to d_G·d_A',
    file: 'native/cpu/precondition.cpp',
    from: 'auto den = [&](int64_t i, int64_t j) { return std::max(dG[i], 0.f) * std::max(dA[j], 0.f) + lambda; };',
    to: 'auto den = [&](int64_t i, int64_t j) { return std::max(dG[i], 0.f) * std::max(dA[j], 0.f) + 0.5f * lambda; };',
    tests: ['test/kfac/kfac-nn.test.ts'],
  },
  {
    id: 'precondition-bias',
    what: "the bias gradient's row overwrites ∇W·Q_A instead of adding to it",
    file: 'native/cpu/precondition.cpp',
    from: 'if (gb) sgemm(false, false, dout, Da, 1, 1.f, gb, 1, B + din * Da, Da, 1.f, T, Da);',
    to: 'if (gb) sgemm(false, false, dout, Da, 1, 1.f, gb, 1, B + din * Da, Da, 0.f, T, Da);',
    tests: ['test/kfac/kfac-nn.test.ts'],
  },
  {
    id: 'pi-damping',
    what: 'π-damping gives A the damping √λ/π meant for G',
    file: 'native/cpu/precondition.cpp',
    from: 'p.damp_A = pi * s;',
    to: 'p.damp_A = s / pi;',
    tests: ['test/kfac/kfac-kernels.test.ts'],
    filter: 'inverse method',
  },
  {
    id: 'warm-refresh-off',
    what: 'warm eigenbasis refreshes silently replaced by cold solves',
    file: 'lib/kfac/decompose.ts',
    from: 'if (warm && previous) {',
    to: 'if (false && warm && previous) {',
    tests: ['test/kfac/kfac-optimizer.test.ts'],
    filter: 'warm eigenbasis',
  },
  // Optimizers (native/cpu/optim.cpp, lib/optim)
  {
    id: 'adamw-bias-correction',
    what: "AdamW drops the first moment's bias correction",
    file: 'native/cpu/optim.cpp',
    from: 'const double bc1 = 1.0 - std::pow(p.beta1, double(p.step));',
    to: 'const double bc1 = 1.0;',
    tests: ['test/optim/optim.test.ts'],
  },
  {
    id: 'adamw-step-count',
    what: 'AdamW bias-corrects every step as if it were the first',
    file: 'lib/optim/adamw.ts',
    from: 's.step += 1;',
    to: 's.step = 1;',
    tests: ['test/optim/optim.test.ts'],
  },
  {
    id: 'sgd-nesterov',
    what: 'Nesterov momentum applies the plain momentum buffer (the update code the CPU and CUDA share)',
    file: 'native/core/optim_update.h',
    from: 'd = s.nesterov ? d + s.mom * buf : buf;',
    to: 'd = buf;',
    tests: ['test/optim/optim.test.ts'],
  },
  {
    id: 'sgd-restore-momentum',
    what: 'SGD.loadStateDict forgets the momentum buffers (a resume restarts momentum)',
    file: 'lib/optim/sgd.ts',
    from: 'if (t) this.#buffers.set(p.name, t.device === p.tensor.device ? t.clone() : t.to(p.tensor.device));',
    to: 'if (t && false) this.#buffers.set(p.name, t.device === p.tensor.device ? t.clone() : t.to(p.tensor.device));',
    tests: ['test/train/trainer.test.ts'],
  },
  // Out of memory names what was allocating (native/napi/errors.h, lib/train/trainer.ts)
  {
    id: 'oom-op-name',
    what: "an out-of-memory error inside an op no longer names the op",
    file: 'native/napi/errors.cpp',
    from: 'if (!op || !*op) return e;',
    to: 'return e;',
    tests: ['test/cuda/device-cache.test.ts'],
    filter: 'retries once',
  },
  {
    id: 'oom-trainer-phase',
    what: 'the Trainer rethrows an out-of-memory error without the step it stopped',
    file: 'lib/train/trainer.ts',
    from: 'throw withOomContext(phase, e);',
    to: 'throw e;',
    tests: ['test/train/trainer.test.ts'],
    filter: 'out of memory',
  },
  // bf16 activations follow the device (lib/nn/embedding.ts)
  {
    id: 'bf16-activations-on-cpu',
    what: 'a model asked for bf16 activations keeps asking for them on the CPU (model.to(\'cpu\') breaks it)',
    file: 'lib/nn/embedding.ts',
    from: "return device === 'cpu' ? 'float32' : asked;",
    to: 'return asked;',
    tests: ['test/cuda/cuda-emulation-bf16-train.test.ts'],
    filter: 'on the CPU',
  },
  {
    id: 'probe-loss-apart',
    what: "adaptive damping's probe reads the loss after the step apart from its record (a second wait)",
    file: 'lib/kfac/kfac-optimizer.ts',
    from: 'const at = ride ? rec.values(deferred.map((d) => d.tensor)) : -1;',
    to: 'const at = ride && false ? rec.values(deferred.map((d) => d.tensor)) : -1;',
    tests: ['test/cuda/cuda-train.test.ts'],
    filter: 'adaptive damping',
  },
  // Benchmarks' own arithmetic (lib/bench)
  {
    id: 'profile-no-device-wait',
    what: "the op profile stops waiting for each call's device work (its shares become launch times)",
    file: 'lib/bench/profile.ts',
    from: 'sync?.();',
    to: '',
    tests: ['test/bench/bench-profile.test.ts'],
  },
  {
    id: 'train-step-no-probe',
    what: "bench train-step's K-FAC skips adaptive damping's probe forward (a step cheaper than a run's)",
    file: 'lib/bench/train-step.ts',
    from: 'const probe = opt.wantsLoss?.() ?? false;',
    to: 'const probe = false;',
    tests: ['test/cli/cli-bench-train-step.test.ts'],
    dist: true,
  },
  {
    id: 'run-option-ignored',
    what: 'a run option that the optimizer does not read is ignored again instead of refused',
    file: 'lib/cli/run-flags.ts',
    from: "if (s.optimizers && !s.optimizers.includes(optimizer)) return `${appliesTo(key)} (got ${optimizer})`;",
    to: '',
    tests: ['test/cli/run-flags-applies.test.ts'],
  },
  {
    id: 'compare-shared-to-all',
    what: "compare gives a shared option to every run, whether or not the run's optimizer reads it",
    file: 'lib/cli/commands/compare.ts',
    from: 'if (shared[key] === undefined || notApplicable(key, optimizer, peft)) continue;',
    to: 'if (shared[key] === undefined) continue;',
    tests: ['test/cli/run-flags-applies.test.ts'],
  },
  {
    id: 'run-kfac-heavy-ball',
    what: "a K-FAC run's momentum is heavy-ball again",
    file: 'lib/train/run-config.ts',
    from: "if (c.nesterov === undefined && optimizer === 'kfac' && c.momentum > 0) c.nesterov = DEFAULTS.kfacNesterov;",
    to: '',
    tests: ['test/cli/run-flags-applies.test.ts'],
  },
  {
    id: 'cost-shared-a-per-layer',
    what: "K-FAC's cost counts a shared A factor's update once per layer that reads it",
    file: 'lib/kfac/cost.ts',
    from: 'if (!factorRows.has(key)) factorRows.set(key, { n: Da, rows: R });',
    to: 'factorRows.set(`${key}#${l.name}`, { n: Da, rows: R });',
    tests: ['test/kfac/kfac-cost.test.ts'],
  },
  {
    id: 'train-flops-head-scaled',
    what: 'the one-layer count multiplies a head outside the blocks by the layer count',
    file: 'lib/bench/train-flops.ts',
    from: 'const heads = kl.filter((l) => !inBlock(l.name));',
    to: 'const heads = kl.filter(() => false);',
    tests: ['test/kfac/kfac-cost.test.ts'],
  },
  // LoRA
  {
    id: 'lora-scale',
    what: 'LoRA scales the branch by alpha/√r without rsLoRA',
    file: 'lib/peft/lora.ts',
    from: 'scale: useRslora ? alpha / Math.sqrt(r) : alpha / r,',
    to: 'scale: alpha / Math.sqrt(r),',
    tests: ['test/peft/peft-lora.test.ts'],
  },
  // Transformer kernels
  {
    id: 'attention-causal-mask',
    what: 'the causal mask lets each query see one future key',
    file: 'native/cpu/nn_attention.cpp',
    from: 'return causal ? std::min(d.Tk - 1, i + (d.Tk - d.Tq)) : d.Tk - 1;',
    to: 'return causal ? std::min(d.Tk - 1, i + 1 + (d.Tk - d.Tq)) : d.Tk - 1;',
    tests: ['test/nn/nn-attention.test.ts'],
  },
  {
    id: 'attention-padding-mask',
    what: 'the padding mask is ignored (padded keys get attention)',
    file: 'native/cpu/nn_attention.cpp',
    from: 'for (int64_t j = 0; j < n; ++j) row[j] = mb[j] != 0.f ? row[j] : -kInf;',
    to: 'for (int64_t j = 0; j < n; ++j) row[j] = mb[j] != 0.f ? row[j] : row[j];',
    tests: ['test/nn/nn-attention.test.ts'],
  },
  {
    id: 'attention-online-rescale',
    what: "the blocked forward's running softmax sum is not rescaled when the row maximum grows",
    file: 'native/cpu/nn_attention.cpp',
    from: 'l[r] = l[r] * alpha + sum;',
    to: 'l[r] = l[r] + sum;',
    tests: ['test/nn/attention-blocked.test.ts'],
  },
  {
    id: 'attention-cuda-causal-tile-skip',
    what: "the CUDA dK/dV pass skips a query tile whose last row sees exactly the key tile's first key",
    file: 'native/cuda/nn_attention_body.h',
    from: '(p.causal && i0 + m - 1 + (p.Tk - p.Tq) < j0)',
    to: '(p.causal && i0 + m - 1 + (p.Tk - p.Tq) <= j0)',
    tests: ['test/cuda/attention-emulation.test.ts'],
  },
  {
    id: 'attention-cuda-dropout-index',
    what: 'the CUDA forward draws the dropout of key j0 + j from counter j (the tile offset forgotten)',
    file: 'native/cuda/nn_attention_body.h',
    from: 'hd::st(prow, j, e == 0.f ? 0.f : e * attn_keep(p, tl.b, tl.h, tl.i0 + r, j0 + j));',
    to: 'hd::st(prow, j, e == 0.f ? 0.f : e * attn_keep(p, tl.b, tl.h, tl.i0 + r, j));',
    tests: ['test/cuda/attention-emulation.test.ts'],
  },
  {
    id: 'attention-tc-rescale',
    what: 'the tensor-core forward forgets to rescale O by alpha when a key tile raises the running max',
    file: 'native/cuda/nn_attention_tc_body.h',
    from: 'for (int64_t c = 0; c < D; ++c) sh.o[r * lo + c] *= alpha;',
    to: '(void)lo;',
    tests: ['test/cuda/attention-tc-emulation.test.ts'],
  },
  {
    id: 'attention-tc-dk-transpose',
    what: 'the tensor-core dK/dV pass multiplies dS instead of dSᵀ by Q',
    file: 'native/cuda/nn_attention_tc_body.h',
    from: 'attn_tc_gemm<true, false>(sh.dk, lo, sh.ds,',
    to: 'attn_tc_gemm<false, false>(sh.dk, lo, sh.ds,',
    tests: ['test/cuda/attention-tc-emulation.test.ts'],
  },
  {
    id: 'mma-tile-accumulate',
    what: 'a 16×16 tile product overwrites its accumulator instead of adding to it',
    file: 'native/cuda/hd_mma.h',
    from: 'float s = acc ? C[r * ldc + c] : 0.f;',
    to: 'float s = 0.f;',
    tests: ['test/cuda/attention-tc-emulation.test.ts'],
  },
  {
    id: 'add-norm-cpu-sum',
    what: 'the CPU norm with a fused residual add normalises x instead of x + residual',
    file: 'native/cpu/nn_norm.cpp',
    from: '  return sr;\n}',
    to: '  return xr;\n}',
    tests: ['test/nn/nn-add-norm.test.ts'],
  },
  {
    id: 'add-norm-cuda-sum',
    what: 'the CUDA norm body with a fused residual add reads the row from x, not from the sum it stored',
    file: 'native/cuda/nn_norm_body.h',
    from: 'const T* xr = res ? sum + row * C : x + row * C;',
    to: 'const T* xr = x + row * C;',
    tests: ['test/nn/nn-add-norm.test.ts'],
  },
  // The step record (native/core/record_math.h, native/cpu/record.cpp, native/cuda/record_body.h)
  {
    id: 'record-trust-floor',
    what: 'the trust-ratio clip compares each tensor with its own rms only, not with max(rms θ_i, rms θ, θ_min)',
    file: 'native/core/record_math.h',
    from: 'const double tau = fixed ? k : k * sqrt(pSize[i]) * nan_max(sqrt(pSq[i] / pSize[i]), rms);',
    to: 'const double tau = fixed ? k : k * sqrt(pSize[i]) * sqrt(pSq[i] / pSize[i]);',
    tests: ['test/kfac/kfac-step-record.test.ts'],
  },
  {
    id: 'record-ema-guard-cpu',
    what: 'the CPU guarded EMA folds the statistics in whatever the flag says',
    file: 'native/cpu/record.cpp',
    from: '  if (record_math::get(record.f32(), slot) == 0.0) return;\n  cpu::scale(',
    to: '  cpu::scale(',
    tests: ['test/kfac/kfac-nonfinite.test.ts'],
  },
  {
    id: 'record-flag-body',
    what: 'the device body writes the all-finite flag as 1 whatever the sums',
    file: 'native/cuda/record_body.h',
    from: 'ok = ok && record_math::finite(totals[t]);',
    to: 'ok = true;',
    tests: ['test/kfac/kfac-step-record.test.ts'],
  },
  {
    id: 'record-copy-guard-body',
    what: 'the device body of the guarded copy copies whatever the flag says',
    file: 'native/cuda/record_body.h',
    from: '    if (record_math::get(guard, 0) == 0.0) return;\n    for (int64_t j = i.global(); j < n; j += i.stride()) dst[j] = src[j];',
    to: '    for (int64_t j = i.global(); j < n; j += i.stride()) dst[j] = src[j];',
    tests: ['test/kfac/kfac-step-record.test.ts'],
  },
  {
    id: 'record-term-sums',
    what: "the device sum of a curvature term's rows skips its first row",
    file: 'native/cuda/quadratic_body.h',
    from: 'for (int64_t r = first[t]; r < first[t + 1]; ++r) s += rows[r];',
    to: 'for (int64_t r = first[t] + 1; r < first[t + 1]; ++r) s += rows[r];',
    tests: ['test/kfac/kfac-step-record.test.ts'],
  },
  {
    id: 'record-loss-check-cpu',
    what: "the CPU flag ignores the losses copied into the record (a NaN loss lets the statistics in)",
    file: 'native/cpu/record.cpp',
    from: '    finite = finite && record_math::finite(record_math::get(record.f32(), s));',
    to: '    (void)s;',
    tests: ['test/kfac/kfac-step-record.test.ts', 'test/kfac/kfac-nonfinite.test.ts'],
  },
  {
    id: 'record-loss-check-body',
    what: 'the device body of the flag ignores the checked slots (the losses)',
    file: 'native/cuda/record_body.h',
    from: 'for (int64_t s = check_at; s < check_at + check_count; ++s) ok = ok && record_math::finite(record_math::get(record, s));',
    to: 'for (int64_t s = check_at; s < check_at + check_count; ++s) (void)s;',
    tests: ['test/kfac/kfac-step-record.test.ts'],
  },
  {
    id: 'loss-on-device-order',
    what: 'the device sum of the rows\' losses (lossTo) skips the last row',
    file: 'native/cuda/nn_loss_body.h',
    from: '    for (int64_t r = 0; r < n; ++r) total += row_loss[r];',
    to: '    for (int64_t r = 0; r + 1 < n; ++r) total += row_loss[r];',
    tests: ['test/cuda/cuda-emulation.test.ts'],
  },
  {
    id: 'record-fixed-threshold',
    what: "the norm clip on the record (fixed) bounds by the trust ratio's τ instead of its maxNorm",
    file: 'native/core/record_math.h',
    from: 'r.threshold = fixed ? k : k * rms * sqrt(size);',
    to: 'r.threshold = k * rms * sqrt(size);',
    tests: ['test/kfac/kfac-step-record.test.ts'],
  },
  {
    id: 'record-grad-clip-eps',
    what: "gradient clipping on the record scales by maxNorm/‖∇W‖, without clip_grad_norm_'s 10⁻⁶",
    file: 'native/core/record_math.h',
    from: 'const double c = r.threshold / (r.norm + eps);',
    to: 'const double c = r.threshold / r.norm;',
    tests: ['test/kfac/kfac-grad-clip.test.ts'],
  },
  {
    id: 'loss-ignore-index',
    what: 'cross-entropy averages over ignored (-100) targets too',
    file: 'native/cpu/nn_loss.cpp',
    from: 'cnt += targets[n] != ignore_index;',
    to: 'cnt += 1;',
    tests: ['test/nn/nn-loss.test.ts'],
  },
  {
    id: 'gemm-beta-zero',
    what: 'sgemm with β = 0 multiplies the old C by 0 instead of never reading it',
    file: 'native/cpu/gemm.cpp',
    from: 'if (beta == 0.f)\n      std::fill(c, c + N, 0.f);',
    to: 'if (beta == 0.f)\n      for (int64_t j = 0; j < N; ++j) c[j] *= beta;',
    tests: ['test/linalg/matmul.test.ts', 'test/linalg/gemm-kernels.test.ts'],
  },
  // Memory
  {
    id: 'finalizer-leak',
    what: 'a collected tensor keeps its native memory (a leaked reference in the finalizer)',
    file: 'native/napi/tensor_wrap.cpp',
    from: 'void TensorWrap::Finalize(Napi::Env env) { release(env); }',
    to: 'void TensorWrap::Finalize(Napi::Env env) { new kfac::Tensor(tensor_); release(env); }',
    tests: ['test/tensor/tensor.test.ts'],
  },
  // The CLI and the comparison
  {
    id: 'cli-newton-clip-dropped',
    what: 'train --newton-clip is parsed but never reaches the optimizer',
    file: 'lib/train/run-optimizer.ts',
    from: 'newtonClip: kfacNewtonClip(c),',
    to: 'newtonClip: null,',
    tests: ['test/cli/cli-train.test.ts'],
    filter: 'K-FAC with Newton-step clipping',
    dist: true,
  },
  {
    id: 'compare-own-best',
    what: "steps-to-baseline measures each run against its own best, not the baseline's",
    file: 'lib/train/compare.ts',
    from: 'const target = bestOf(b.curve.evals, mode);',
    to: 'const target = bestOf(r.curve.evals, mode);',
    tests: ['test/train/compare.test.ts'],
  },
  {
    id: 'compare-averaged-all-seeds',
    what: "the seed-averaged reading averages the baseline over all its seeds, not those it shares with the run",
    file: 'lib/train/seed-average.ts',
    from: 'return { own, base: baseRuns.filter((b) => own.some((r) => r.seed === b.seed)) };',
    to: 'return { own, base: baseRuns };',
    tests: ['test/train/compare.test.ts'],
  },
  {
    id: 'bootstrap-uniform-multisets',
    what: 'the exact bootstrap weighs every multiset of seeds alike instead of by its multinomial probability',
    file: 'lib/train/seed-bootstrap.ts',
    from: 'weigh(counts, Math.exp(logFact[n]! - logW - logFact[left]! - n * Math.log(n)));',
    to: 'weigh(counts, 1 / multisets);',
    tests: ['test/train/seed-bootstrap.test.ts'],
  },
  {
    id: 'bootstrap-unpaired',
    what: "the bootstrap draws the baseline's seeds apart from the configuration's, breaking the pairing by seed",
    file: 'lib/train/seed-bootstrap.ts',
    from: '        b.push(pairs[i]!.base);',
    to: '        b.push(pairs[(i + 1) % n]!.base);',
    tests: ['test/train/seed-bootstrap.test.ts'],
  },
  {
    id: 'gradient-momentum-nesterov-weight',
    what: "the Nesterov step of the gradients' momentum weighs the history by μ instead of μ²",
    file: 'lib/kfac/gradient-momentum.ts',
    from: '          ops.axpy(mu * mu, m, g);',
    to: '          ops.axpy(mu, m, g);',
    tests: ['test/kfac/kfac-gradient-momentum.test.ts'],
  },
  {
    id: 'gradient-momentum-kept-on-undo',
    what: "an undone step keeps its gradient in the momentum",
    file: 'lib/kfac/gradient-momentum.ts',
    from: '    for (const i of this.#committed) {',
    to: '    for (const i of [] as number[]) {',
    tests: ['test/kfac/kfac-gradient-momentum.test.ts'],
  },
  {
    id: 'gradient-momentum-refused-gradients',
    what: 'a refused step leaves the momentum-weighted gradients in place of the raw ones',
    file: 'lib/kfac/gradient-momentum.ts',
    from: '    for (const i of this.#pending ?? []) ops.copy(this.#other[i]!, this.params[i]!.grad!);',
    to: '    for (const i of [] as number[]) ops.copy(this.#other[i]!, this.params[i]!.grad!);',
    tests: ['test/kfac/kfac-gradient-momentum.test.ts'],
  },
  {
    id: 'resume-completes-defaults',
    what: "a resumed run fills the fields its config.json lacks with today's defaults",
    file: 'lib/cli/run-flags.ts',
    from: '  const c = { ...(s as unknown as RunConfig), ...given };',
    to: '  const c = withDefaults({ ...(s as unknown as RunConfig), ...given });',
    tests: ['test/cli/cli-resume.test.ts'],
    dist: true,
  },
  {
    id: 'resume-unchecked-fields',
    what: "a resumed run's saved fields are not checked",
    file: 'lib/cli/run-flags.ts',
    from: '      parseRunValue(flag, asFlagValue(flag, RUN_FLAGS[flag]!.kind, v));',
    to: '      void asFlagValue;',
    tests: ['test/cli/cli-resume.test.ts'],
    dist: true,
  },
  // The nn ops' CUDA kernel bodies, through the host emulation (native/cuda/nn_*_body.h)
  {
    id: 'cuda-tree-step',
    what: 'the shared-memory tree reduction folds a quarter instead of half of the live range',
    file: 'native/cuda/hd.h',
    from: 'const int half = i.threads >> (s + 1);',
    to: 'const int half = i.threads >> (s + 2);',
    tests: ['test/cuda/cuda-emulation-norm.test.ts'],
  },
  {
    id: 'cuda-swiglu-gate',
    what: "SwiGLU's gate gradient drops the (1 + x(1 − σ)) factor of silu'",
    file: 'native/cuda/nn_act_body.h',
    from: 'hd::st(out, j, d * up * s * (1.f + x * (1.f - s)));',
    to: 'hd::st(out, j, d * up * s);',
    tests: ['test/cuda/cuda-emulation-train.test.ts'],
  },
  {
    id: 'cuda-ce-inplace-target',
    what: 'cross-entropy reads the target logit after an in-place dlogits overwrote it',
    file: 'native/cuda/nn_loss_body.h',
    from: 'row_loss[row] = double(m) + hd::log_(se) - double(zt[0]);',
    to: 'row_loss[row] = double(m) + hd::log_(se) - double(zr[t]);',
    tests: ['test/cuda/cuda-emulation-norm.test.ts'],
    filter: 'cross-entropy',
  },
  {
    id: 'cuda-dropout-key',
    what: "the device dropout keys its stream by the raw seed, not the CPU's mixed key",
    file: 'native/cuda/nn_dropout_body.h',
    from: 'splitmix64(seed ^ 0x3C6EF372FE94F82Bull)',
    to: 'splitmix64(seed)',
    tests: ['test/cuda/cuda-emulation.test.ts'],
    filter: 'dropout',
  },
];
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

if (flag('--list') || flag('--check')) {
  let stale = 0;
  for (const m of MUTATIONS) {
    const n = readFileSync(join(ROOT, m.file), 'utf8').split(m.from).length - 1;
    if (n !== 1) stale++;
    console.log(`${m.id.padEnd(26)} ${m.file.padEnd(30)} ${n === 1 ? m.what : `STALE: snippet found ${n} times`}`);
  }
  process.exit(stale ? 1 : 0);
}

const only = value('--only')?.split(',');
const testsOverride = value('--tests')?.split(',');
const filterOverride = value('--filter');
const verbose = flag('--verbose');
if (only) for (const id of only) if (!MUTATIONS.some((m) => m.id === id)) fail(`unknown mutation ${id} (see --list)`);
const selected = only ? MUTATIONS.filter((m) => only.includes(m.id)) : MUTATIONS;

function fail(msg) {
  console.error(`mutate: ${msg}`);
  process.exit(2);
}

const isNative = (f) => f.startsWith('native/');

function build(kind) {
  const [cmd, cmdArgs] = kind === 'native' ? ['npx', ['node-gyp', 'build', '-j', '2']] : ['npm', ['run', 'build:ts']];
  const r = spawnSync(cmd, cmdArgs, { cwd: ROOT, encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

// The file currently mutated and its original text, for the signal handlers; also kept on disk
// (build/ is ignored by git) so a run killed outright is repaired by the next one.
let pending = null;
let child = null;
const JOURNAL = join(ROOT, 'build', 'mutate-pending.json');

function begin(p) {
  mkdirSync(dirname(JOURNAL), { recursive: true });
  writeFileSync(JOURNAL, JSON.stringify(p));
  pending = p;
}

function restore() {
  if (!pending) return;
  writeFileSync(join(ROOT, pending.file), pending.text);
  rmSync(JOURNAL, { force: true });
  const m = pending;
  pending = null;
  return m;
}

if (existsSync(JOURNAL)) {
  pending = JSON.parse(readFileSync(JOURNAL, 'utf8'));
  const m = restore();
  console.error(`mutate: an earlier run was killed with ${m.file} mutated; restored it`);
  if (isNative(m.file) && !build('native').ok) fail('the restored native build failed');
  if (m.dist && !build('ts').ok) fail('the restored dist build failed');
}

function onSignal(sig) {
  if (child) child.kill('SIGTERM');
  const m = restore();
  if (m) {
    console.error(`\nmutate: ${sig}: restored ${m.file}; rebuilding what it changed…`);
    if (isNative(m.file)) build('native');
    if (m.dist) build('ts');
  }
  process.exit(130);
}
process.on('SIGINT', () => onSignal('SIGINT'));
process.on('SIGTERM', () => onSignal('SIGTERM'));

function runTests(files, filter) {
  const vitest = join(ROOT, 'node_modules', 'vitest', 'vitest.mjs');
  const a = [vitest, 'run', '--bail', '1', ...files, ...(filter ? ['-t', filter] : [])];
  return new Promise((resolve) => {
    let out = '';
    child = spawn(process.execPath, a, { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } });
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => {
      child = null;
      resolve({ code, out });
    });
  });
}

/** The names of the tests that failed (vitest's FAIL lines). */
function failedTests(out) {
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  return [...new Set(plain.split('\n').filter((l) => /^\s*FAIL\s.*>/.test(l)).map((l) => l.replace(/^\s*FAIL\s+/, '').trim()))];
}

const results = [];
const t0 = Date.now();
console.log(`mutation run: ${selected.length} mutation(s), one at a time\n`);
for (const m of selected) {
  const path = join(ROOT, m.file);
  const text = readFileSync(path, 'utf8');
  const count = text.split(m.from).length - 1;
  if (count !== 1) {
    results.push({ m, status: 'STALE', detail: `snippet found ${count} times in ${m.file}; update the list` });
    console.log(`STALE   ${m.id}: snippet found ${count} times in ${m.file}`);
    continue;
  }
  const tests = testsOverride ?? m.tests;
  const start = Date.now();
  begin({ file: m.file, text, dist: m.dist });
  let status;
  let detail = '';
  try {
    writeFileSync(path, text.replace(m.from, m.to));
    const b = isNative(m.file) ? build('native') : m.dist ? build('ts') : { ok: true, output: '' };
    if (!b.ok) {
      status = 'caught';
      detail = 'does not compile';
      if (verbose) console.log(b.output);
    } else {
      const r = await runTests(tests, filterOverride ?? m.filter);
      if (verbose) console.log(r.out);
      status = r.code === 0 ? 'MISSED' : 'caught';
      detail = r.code === 0 ? 'the tests passed' : failedTests(r.out).slice(0, 2).join('; ') || `vitest exit ${r.code}`;
    }
  } finally {
    restore();
  }
  // Back to the real code before the next mutation.
  if (isNative(m.file)) {
    const b = build('native');
    if (!b.ok) fail(`the restored native build failed:\n${b.output}`);
  }
  if (m.dist) {
    const b = build('ts');
    if (!b.ok) fail(`the restored dist build failed:\n${b.output}`);
  }
  const secs = ((Date.now() - start) / 1000).toFixed(0);
  results.push({ m, status, detail });
  console.log(`${status.padEnd(7)} ${m.id.padEnd(26)} ${`${secs} s`.padStart(6)}  ${tests.join(' ')}${(filterOverride ?? m.filter) ? ` -t "${filterOverride ?? m.filter}"` : ''}`);
  console.log(`        ${m.what}${detail ? ` → ${detail}` : ''}`);
}

const caught = results.filter((r) => r.status === 'caught').length;
const bad = results.filter((r) => r.status !== 'caught');
console.log(`\n${caught}/${results.length} mutations caught in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
for (const r of bad) console.log(`  ${r.status}: ${r.m.id} (${r.m.file}) — ${r.detail}`);
process.exit(bad.length ? 1 : 0);
