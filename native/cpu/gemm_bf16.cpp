// The bf16 GEMM driver: kernel choice, conversions, and the portable kernel.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "../core/derived.h"
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

void portable(int64_t m0, int64_t m1, int64_t N, int64_t K, const uint16_t* A, int64_t lda, Bf16B B, float* C,
              int64_t ldc, bool accumulate) {
  // Widen a chunk of op(B)'s column, then of each row of A, to float32 (stack buffers: nothing
  // is allocated inside the thread pool); each chunk's float32 sum is added into C.
  constexpr int64_t KC = 256;
  float a[KC], b[KC];
  for (int64_t j = 0; j < N; ++j) {
    if (K == 0 && !accumulate)
      for (int64_t i = m0; i < m1; ++i) C[i * ldc + j] = 0.f;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kn = K - k0 < KC ? K - k0 : KC;
      for (int64_t k = 0; k < kn; ++k) b[k] = bf16_to_f32(B.at(k0 + k, j));
      for (int64_t i = m0; i < m1; ++i) {
        for (int64_t k = 0; k < kn; ++k) a[k] = bf16_to_f32(A[i * lda + k0 + k]);
        float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
        int64_t k = 0;
        for (; k + 4 <= kn; k += 4) {
          s0 += a[k] * b[k];
          s1 += a[k + 1] * b[k + 1];
          s2 += a[k + 2] * b[k + 2];
          s3 += a[k + 3] * b[k + 3];
        }
        for (; k < kn; ++k) s0 += a[k] * b[k];
        const float s = (s0 + s1) + (s2 + s3);
        float& c = C[i * ldc + j];
        c = (k0 > 0 || accumulate) ? c + s : s;
      }
    }
  }
}

int64_t vnni32_size(int64_t N, int64_t K) { return (N + 31) / 32 * ((K + 1) / 2) * 64; }

void pack_vnni32(int64_t N, int64_t K, Bf16B B, uint16_t* out) {
  const int64_t Kp = (K + 1) / 2, panels = (N + 31) / 32;
  parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      uint16_t* dst = out + p * Kp * 64;
      const int64_t j0 = p * 32, nj = N - j0 < 32 ? N - j0 : 32;
      if (nj < 32)
        for (int64_t kp = 0; kp < Kp; ++kp)
          for (int64_t j = nj; j < 32; ++j) dst[kp * 64 + 2 * j] = dst[kp * 64 + 2 * j + 1] = 0;
      if (B.nk) {
        // [N, K]: each column of op(B) is a contiguous row of B; read it in order.
        for (int64_t j = 0; j < nj; ++j) {
          const uint16_t* src = B.p + (j0 + j) * B.ld;
          for (int64_t kp = 0; kp < K / 2; ++kp) {
            dst[kp * 64 + 2 * j] = src[2 * kp];
            dst[kp * 64 + 2 * j + 1] = src[2 * kp + 1];
          }
          if (K & 1) {
            dst[(Kp - 1) * 64 + 2 * j] = src[K - 1];
            dst[(Kp - 1) * 64 + 2 * j + 1] = 0;
          }
        }
      } else {
        // [K, N]: rows of B are rows of op(B); interleave two of them.
        for (int64_t kp = 0; kp < Kp; ++kp) {
          const uint16_t* r0 = B.p + 2 * kp * B.ld + j0;
          const uint16_t* r1 = 2 * kp + 1 < K ? r0 + B.ld : nullptr;
          for (int64_t j = 0; j < nj; ++j) {
            dst[kp * 64 + 2 * j] = r0[j];
            dst[kp * 64 + 2 * j + 1] = r1 ? r1[j] : uint16_t(0);
          }
        }
      }
    }
  });
}

}  // namespace bf16k

namespace {

std::atomic<int> g_forced{-1};

struct Choice {
  Bf16Kernel kernel;
  std::string request, warning;
};

Bf16Kernel best_supported() {
  if (bf16_kernel_supported(Bf16Kernel::Amx)) return Bf16Kernel::Amx;
  if (bf16_kernel_supported(Bf16Kernel::Avx512Bf16)) return Bf16Kernel::Avx512Bf16;
  return Bf16Kernel::Portable;
}

// KFAC_BF16_KERNEL parsed once: auto (or unset) takes the best; a named kernel runs when this
// machine supports it; anything else falls back to the best with a warning naming both.
const Choice& choice() {
  static const Choice c = [] {
    Choice r{best_supported(), "", ""};
    const char* env = std::getenv("KFAC_BF16_KERNEL");
    if (!env || !*env) return r;
    r.request = env;
    if (r.request == "auto") return r;
    for (Bf16Kernel k : {Bf16Kernel::Amx, Bf16Kernel::Avx512Bf16, Bf16Kernel::Portable})
      if (r.request == bf16_kernel_name(k)) {
        if (bf16_kernel_supported(k)) r.kernel = k;
        else
          r.warning = "KFAC_BF16_KERNEL=" + r.request + " is not supported by this CPU, OS or build; running " +
                      bf16_kernel_name(r.kernel) + " instead";
        return r;
      }
    r.warning = "KFAC_BF16_KERNEL=" + r.request + " is not one of auto, amx, avx512bf16, portable; running " +
                bf16_kernel_name(r.kernel) + " instead";
    return r;
  }();
  return c;
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
  return choice().kernel;
}

const char* bf16_kernel_request() { return choice().request.c_str(); }
std::string bf16_kernel_warning() { return g_forced.load(std::memory_order_relaxed) >= 0 ? std::string() : choice().warning; }

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

int64_t bf16_packed_elems(Bf16Kernel k, int64_t N, int64_t K) {
  switch (k) {
    case Bf16Kernel::Avx512Bf16: return bf16k::vnni32_size(N, K);
    case Bf16Kernel::Amx: return bf16k::amx_packed_size(N, K);
    case Bf16Kernel::Portable: return 0;
  }
  return 0;
}

void bf16_pack(Bf16Kernel k, int64_t N, int64_t K, Bf16B B, uint16_t* out) {
  if (k == Bf16Kernel::Avx512Bf16) bf16k::pack_vnni32(N, K, B, out);
  else if (k == Bf16Kernel::Amx) bf16k::amx_pack(N, K, B, out);
}

void gemm_bf16_packed(Bf16Kernel k, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, Bf16B B,
                      const uint16_t* Bp, float* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  // Row blocks of C: multiples of the kernels' tile heights, enough work to pay a thread.
  const int64_t rows = std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(1, N * K));
  const int64_t grain = (std::max<int64_t>(rows, 16) + 15) / 16 * 16;
  parallel_for(M, grain, [&](int64_t m0, int64_t m1) {
    if (k == Bf16Kernel::Avx512Bf16) bf16k::avx512bf16(m0, m1, N, K, A, lda, Bp, C, ldc, accumulate);
    else if (k == Bf16Kernel::Amx) bf16k::amx(m0, m1, N, K, A, lda, Bp, C, ldc, accumulate);
    else bf16k::portable(m0, m1, N, K, A, lda, B, C, ldc, accumulate);
  });
}

void gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb,
               bool b_nk, float* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  const Bf16Kernel k = bf16_kernel();
  const Bf16B b{B, ldb, b_nk};
  const int64_t elems = bf16_packed_elems(k, N, K);
  if (elems == 0) return gemm_bf16_packed(k, M, N, K, A, lda, b, nullptr, C, ldc, accumulate);
  HostBlock packed(size_t(elems) * sizeof(uint16_t));  // from the host allocator's cache once warm
  bf16_pack(k, N, K, b, static_cast<uint16_t*>(packed.data()));
  gemm_bf16_packed(k, M, N, K, A, lda, b, static_cast<const uint16_t*>(packed.data()), C, ldc, accumulate);
}

}  // namespace kfac::cpu
