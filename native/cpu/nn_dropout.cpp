#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's intrinsic headers build some shifts from an undefined vector, which its
// uninitialised-value analysis reports once inlined here; those lanes are never used.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "nn_dropout.h"

#include <algorithm>
#include <cstring>

#include "cpu_features.h"
#include "threadpool.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

namespace kfac::cpu {

namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KFAC_DROPOUT_AVX512 1
// Sixteen elements per step: the same splitmix64 of key + i as DropoutMask::keep, on eight
// 64-bit lanes twice (vpmullq emulated from AVX-512F multiplies), so the mask is bit-identical
// to the scalar path (test/nn/nn-dropout.test.ts compares them). Tails use masked loads/stores:
// nothing is read or written past n.
__attribute__((target("avx512f"))) __m512i mix8(__m512i x) {
  x = _mm512_add_epi64(x, _mm512_set1_epi64(int64_t(0x9E3779B97F4A7C15ull)));
  x = _mm512_mullox_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 30)), _mm512_set1_epi64(int64_t(0xBF58476D1CE4E5B9ull)));
  x = _mm512_mullox_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 27)), _mm512_set1_epi64(int64_t(0x94D049BB133111EBull)));
  return _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
}

__attribute__((target("avx512f"))) void dropout_avx512(const float* x, float* out, int64_t s, int64_t e, const DropoutMask& m) {
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i thr = _mm512_set1_epi64(int64_t(m.threshold));
  const __m512 scale = _mm512_set1_ps(m.scale);
  for (int64_t i = s; i < e; i += 16) {
    const int64_t left = e - i;
    const __mmask16 in = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    const __m512i base = _mm512_add_epi64(_mm512_set1_epi64(int64_t(m.key + uint64_t(i))), lane);
    const __mmask8 k0 = _mm512_cmpge_epu64_mask(_mm512_srli_epi64(mix8(base), 40), thr);
    const __mmask8 k1 = _mm512_cmpge_epu64_mask(_mm512_srli_epi64(mix8(_mm512_add_epi64(base, _mm512_set1_epi64(8))), 40), thr);
    const __mmask16 keep = __mmask16(k0 | (unsigned(k1) << 8)) & in;
    const __m512 v = _mm512_maskz_loadu_ps(in, x + i);
    _mm512_mask_storeu_ps(out + i, in, _mm512_maskz_mul_ps(keep, v, scale));
  }
}
#endif

void dropout_apply(const float* x, float* out, int64_t n, float p, uint64_t seed) {
  if (p <= 0.f) {
    if (x != out)
      parallel_for(n, 1 << 15, [=](int64_t s, int64_t e) {
        std::memmove(out + s, x + s, size_t(e - s) * sizeof(float));
      });
    return;
  }
  if (p >= 1.f) {
    parallel_for(n, 1 << 15, [=](int64_t s, int64_t e) { std::fill(out + s, out + e, 0.f); });
    return;
  }
  // keep iff the top 24 bits, as an integer, are ≥ p·2²⁴ (exact, no float rounding).
  const DropoutMask m = DropoutMask::make(p, seed);
#ifdef KFAC_DROPOUT_AVX512
  if (kernel_isa_at_least(KernelIsa::Avx512)) {
    parallel_for(n, 1 << 14, [&](int64_t s, int64_t e) { dropout_avx512(x, out, s, e, m); });
    return;
  }
#endif
  parallel_for(n, 1 << 14, [=](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) out[i] = m.keep(uint64_t(i)) ? x[i] * m.scale : 0.f;
  });
}

}  // namespace

void dropout_forward(const float* x, float* out, int64_t n, float p, uint64_t seed) {
  dropout_apply(x, out, n, p, seed);
}

void dropout_backward(const float* dout, float* dx, int64_t n, float p, uint64_t seed) {
  dropout_apply(dout, dx, n, p, seed);
}

}  // namespace kfac::cpu
