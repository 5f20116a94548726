// The bf16 GEMM driver: kernel choice, conversions, and the portable kernel.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../core/error.h"
#include "bf16.h"
#include "cpu_features.h"
#include "threadpool.h"

namespace kfac::cpu {

void convert_f32_to_bf16(const float* src, uint16_t* dst, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dst[i] = f32_to_bf16(src[i]);
  });
}

void convert_bf16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dst[i] = bf16_to_f32(src[i]);
  });
}

namespace bf16k {

void portable(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B,
              int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  std::vector<float> a(size_t(K > 0 ? K : 1));
  for (int64_t i = m0; i < m1; ++i) {
    for (int64_t k = 0; k < K; ++k) a[size_t(k)] = bf16_to_f32(A[i * lda + k]);
    for (int64_t j = 0; j < N; ++j) {
      const uint16_t* b = B + j * ldb;
      float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
      int64_t k = 0;
      for (; k + 4 <= K; k += 4) {
        s0 += a[size_t(k)] * bf16_to_f32(b[k]);
        s1 += a[size_t(k) + 1] * bf16_to_f32(b[k + 1]);
        s2 += a[size_t(k) + 2] * bf16_to_f32(b[k + 2]);
        s3 += a[size_t(k) + 3] * bf16_to_f32(b[k + 3]);
      }
      for (; k < K; ++k) s0 += a[size_t(k)] * bf16_to_f32(b[k]);
      float s = (s0 + s1) + (s2 + s3);
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + s : s;
    }
  }
}

}  // namespace bf16k

namespace {

std::atomic<int> g_forced{-1};

Bf16Kernel best() {
  const char* env = std::getenv("KFAC_BF16_KERNEL");
  if (env && std::strcmp(env, "portable") == 0) return Bf16Kernel::Portable;
  if (env && std::strcmp(env, "avx512bf16") == 0 && bf16_kernel_supported(Bf16Kernel::Avx512Bf16)) return Bf16Kernel::Avx512Bf16;
  if (bf16_kernel_supported(Bf16Kernel::Amx)) return Bf16Kernel::Amx;
  if (bf16_kernel_supported(Bf16Kernel::Avx512Bf16)) return Bf16Kernel::Avx512Bf16;
  return Bf16Kernel::Portable;
}

}  // namespace

bool bf16_kernel_supported(Bf16Kernel k) {
  const CpuFeatures& f = cpu_features();
  switch (k) {
    case Bf16Kernel::Portable: return true;
    case Bf16Kernel::Avx512Bf16: return bf16k::avx512bf16_compiled() && f.avx512bf16;
    case Bf16Kernel::Amx: return bf16k::amx_compiled() && f.amx_bf16 && bf16k::amx_request_permission();
  }
  return false;
}

Bf16Kernel bf16_kernel() {
  int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return Bf16Kernel(forced);
  static const Bf16Kernel b = best();
  return b;
}

void set_bf16_kernel(Bf16Kernel k) {
  if (!bf16_kernel_supported(k))
    throw Error(ErrorCode::InvalidArgument, std::string("bf16 kernel '") + bf16_kernel_name(k) + "' is not supported by this CPU, OS or build",
                "kernel", "a kernel this machine runs", bf16_kernel_name(k));
  g_forced.store(int(k), std::memory_order_relaxed);
}

void reset_bf16_kernel() { g_forced.store(-1, std::memory_order_relaxed); }

const char* bf16_kernel_name(Bf16Kernel k) {
  switch (k) {
    case Bf16Kernel::Portable: return "portable";
    case Bf16Kernel::Avx512Bf16: return "avx512bf16";
    case Bf16Kernel::Amx: return "amx";
  }
  return "unknown";
}

void gemm_bf16_nt(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B,
                  int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  const Bf16Kernel k = bf16_kernel();
  // Rows of C in blocks of 16 (the AMX tile height), enough work per block to pay a thread.
  const int64_t grain = k == Bf16Kernel::Amx ? 32 : std::max<int64_t>(4, 4 * ((1 << 17) / std::max<int64_t>(1, N * K) + 1));
  parallel_for(M, grain, [&](int64_t m0, int64_t m1) {
    switch (k) {
      case Bf16Kernel::Amx: bf16k::amx(m0, m1, N, K, A, lda, B, ldb, C, ldc, accumulate); break;
      case Bf16Kernel::Avx512Bf16: bf16k::avx512bf16(m0, m1, N, K, A, lda, B, ldb, C, ldc, accumulate); break;
      default: bf16k::portable(m0, m1, N, K, A, lda, B, ldb, C, ldc, accumulate);
    }
  });
}

}  // namespace kfac::cpu
