// Many small symmetric eigenproblems at once. Up to 24×24: cyclic Jacobi on eight
// matrices at a time (one per SIMD lane, float32), or in double per matrix on CPUs
// without AVX2; scratch is allocated once per chunk, never per matrix. Larger: the
// divide-and-conquer path per matrix, matrices spread over the pool.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "../core/error.h"
#include "eigh.h"
#include "eigh_detail.h"
#include "eigh_util.h"
#include "cpu_features.h"
#include "threadpool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <climits>

namespace kfac::cpu {

namespace {

// Above this size float Jacobi loses orthogonality (many rotations per vector) and the
// divide-and-conquer path, run per matrix in parallel, is faster anyway.
constexpr int64_t kMaxLaneSize = 24;

#if defined(__x86_64__) && defined(__GNUC__)
#define KFAC_EIG_LANES 1
// Eight matrices side by side, one per float lane of an AVX register: the same rotation
// sequence runs on all of them, each lane with its own angles.
typedef float v8 __attribute__((vector_size(32), aligned(4)));  // unaligned is fine
typedef int i8 __attribute__((vector_size(32), aligned(4)));

// S, Vt: r×r of v8, row-major (S full symmetric; Vt starts as the identity). Returns
// false when some lane had not converged after max_sweeps.
__attribute__((target("avx2,fma"))) bool jacobi_lanes(int64_t r, v8* S, v8* Vt, int max_sweeps) {
  const v8 zero = {0, 0, 0, 0, 0, 0, 0, 0};
  const v8 one = zero + 1.f;
  const v8 tol2 = zero + 1e-12f;  // (1e-6)² relative off-diagonal mass: residual ~1e-6
  const i8 signbit = {INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN};
  for (int sweep = 0;; ++sweep) {
    v8 off = zero, tot = zero;
    for (int64_t i = 0; i < r; ++i) {
      tot += S[i * r + i] * S[i * r + i];
      for (int64_t j = i + 1; j < r; ++j) off += S[i * r + j] * S[i * r + j];
    }
    tot += 2.f * off;
    i8 done = off <= tol2 * tot;
    bool all = true;
    for (int l = 0; l < 8; ++l) all = all && done[l];
    if (all) return true;
    if (sweep >= max_sweeps) return false;
    for (int64_t p = 0; p + 1 < r; ++p) {
      v8* sp = S + p * r;
      for (int64_t q = p + 1; q < r; ++q) {
        v8* sq = S + q * r;
        const v8 apq = sp[q], app = sp[p], aqq = sq[q];
        // Couplings far below both diagonal entries change nothing in float32: skip the
        // pair when that holds in every lane (most pairs in the last sweeps).
        {
          v8 aa = (v8)((i8)apq & ~signbit);
          v8 scale = (v8)((i8)app & ~signbit) + (v8)((i8)aqq & ~signbit);
          i8 small = aa <= 1e-9f * scale;
          if (_mm256_movemask_ps((__m256)small) == 0xff) continue;
        }
        v8 theta = (aqq - app) / (2.f * apq);
        v8 ath = (v8)((i8)theta & ~signbit);
        v8 sgn = (v8)(((i8)theta & signbit) | (i8)one);
        v8 t = sgn / (ath + (v8)_mm256_sqrt_ps((__m256)(theta * theta + one)));
        t = apq == zero ? zero : t;
        t = t == t ? t : zero;  // NaN guard
        const v8 c = one / (v8)_mm256_sqrt_ps((__m256)(t * t + one));
        const v8 s = t * c;
        for (int64_t k = 0; k < r; ++k) {
          v8 a = sp[k], b = sq[k];
          sp[k] = c * a - s * b;
          sq[k] = s * a + c * b;
        }
        sp[p] = app - t * apq;
        sq[q] = aqq + t * apq;
        sp[q] = zero;
        sq[p] = zero;
        for (int64_t k = 0; k < r; ++k) {
          if (k == p || k == q) continue;
          S[k * r + p] = sp[k];
          S[k * r + q] = sq[k];
        }
        v8* vp = Vt + p * r;
        v8* vq = Vt + q * r;
        for (int64_t k = 0; k < r; ++k) {
          v8 a = vp[k], b = vq[k];
          vp[k] = c * a - s * b;
          vq[k] = s * a + c * b;
        }
      }
    }
  }
}
#endif

}  // namespace

// A: [B, r, r] → values [B, r] (ascending), vectors [B, r, r] (eigenvector j in column j).
int64_t eigh_batched(int64_t batch, int64_t r, const float* A, float* values, float* vectors,
                     const EighOptions& opt) {
  if (batch <= 0 || r <= 0) return 0;
  eig::max_abs_checked(batch * r * r, A, "a");
  if (eig::fault_injection() == 3)
    throw_arg(ErrorCode::Numerical, "a", "a batch the solver can decompose", "a failure injected for tests");
  std::atomic<int64_t> retried{0};
  std::atomic<bool> failed{false};
  const int64_t rr = r * r;
  const int64_t grain = std::max<int64_t>(1, 2048 / (rr * r));
#ifdef KFAC_EIG_LANES
  if (cpu_features().avx2 && cpu_features().fma && kernel_isa() != KernelIsa::Generic &&
      r <= kMaxLaneSize) {
    const int64_t groups = (batch + 7) / 8;
    parallel_for(groups, std::max<int64_t>(1, 512 / (rr * r)), [&](int64_t g0, int64_t g1) {
      std::vector<float> Sbuf(static_cast<size_t>(rr) * 8), Vbuf(static_cast<size_t>(rr) * 8);
      v8* S = reinterpret_cast<v8*>(Sbuf.data());
      v8* Vt = reinterpret_cast<v8*>(Vbuf.data());
      std::vector<int64_t> ord(static_cast<size_t>(r));
      for (int64_t g = g0; g < g1; ++g) {
        float scale[8];
        for (int l = 0; l < 8; ++l) {
          int64_t b = g * 8 + l;
          float amax = 0;
          if (b < batch)
            for (int64_t i = 0; i < rr; ++i) amax = std::max(amax, std::fabs(A[b * rr + i]));
          scale[l] = amax > 0 ? std::ldexp(1.f, -std::ilogb(amax)) : 1.f;
          for (int64_t i = 0; i < r; ++i)
            for (int64_t j = 0; j < r; ++j)
              S[size_t(i * r + j)][l] =
                  b < batch ? 0.5f * scale[l] * (A[b * rr + i * r + j] + A[b * rr + j * r + i]) : 0.f;
        }
        for (int64_t i = 0; i < rr; ++i) Vt[size_t(i)] = v8{0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t i = 0; i < r; ++i) Vt[size_t(i * r + i)] += 1.f;
        bool ok = jacobi_lanes(r, S, Vt, 30);
        for (int l = 0; l < 8; ++l) {
          int64_t b = g * 8 + l;
          if (b >= batch) break;
          float* w = values + b * r;
          float* V = vectors + b * rr;
          if (!ok) {
            retried.fetch_add(1);
            try {
              eigh(r, A + b * rr, w, V, opt);
            } catch (...) {
              failed.store(true);
            }
            continue;
          }
          std::iota(ord.begin(), ord.end(), 0);
          std::sort(ord.begin(), ord.end(), [&](int64_t x, int64_t y) {
            return S[size_t(x * r + x)][l] < S[size_t(y * r + y)][l];
          });
          for (int64_t j = 0; j < r; ++j) {
            int64_t o = ord[size_t(j)];
            float v = S[size_t(o * r + o)][l] / scale[l];
            w[j] = opt.clamp_nonneg ? std::max(v, 0.f) : v;
            for (int64_t i = 0; i < r; ++i) V[i * r + j] = Vt[size_t(o * r + i)][l];
          }
        }
      }
    });
    if (failed.load())
      throw Error(ErrorCode::Numerical, "eighBatched: a decomposition did not converge, even in float64");
    return retried.load();
  }
#endif
  if (r > kMaxLaneSize) {
    parallel_for(batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        try {
          if (eigh(r, A + b * rr, values + b * r, vectors + b * rr, opt).retried_double)
            retried.fetch_add(1);
        } catch (...) {
          failed.store(true);
        }
      }
    });
    if (failed.load())
      throw Error(ErrorCode::Numerical, "eighBatched: a decomposition did not converge, even in float64");
    return retried.load();
  }
  parallel_for(batch, grain, [&](int64_t b0, int64_t b1) {
    std::vector<double> S(static_cast<size_t>(rr)), Vt(static_cast<size_t>(rr));
    std::vector<int64_t> ord(static_cast<size_t>(r));
    for (int64_t b = b0; b < b1; ++b) {
      const float* a = A + b * rr;
      float* w = values + b * r;
      float* V = vectors + b * rr;
      float amax = 0;
      for (int64_t i = 0; i < rr; ++i) amax = std::max(amax, std::fabs(a[i]));
      if (amax == 0) {
        std::fill(w, w + r, 0.f);
        std::fill(V, V + rr, 0.f);
        for (int64_t i = 0; i < r; ++i) V[i * r + i] = 1.f;
        continue;
      }
      const double scale = std::ldexp(1.0, -std::ilogb(amax));
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < r; ++j)
          S[size_t(i * r + j)] = 0.5 * scale * (double(a[i * r + j]) + double(a[j * r + i]));
      std::fill(Vt.begin(), Vt.end(), 0.0);
      for (int64_t i = 0; i < r; ++i) Vt[size_t(i * r + i)] = 1.0;
      eig::JacobiStats st;
      bool ok = eig::jacobi_sweeps(r, S.data(), Vt.data(), 1e-10, 0.0, 40,
                                   std::numeric_limits<int64_t>::max(), st);
      if (!ok) {
        // Not converged (never seen in practice): the divide-and-conquer path, whose
        // float32 failure is itself retried in float64.
        retried.fetch_add(1);
        try {
          eigh(r, a, w, V, opt);
        } catch (...) {
          failed.store(true);
        }
        continue;
      }
      std::iota(ord.begin(), ord.end(), 0);
      std::sort(ord.begin(), ord.end(),
                [&](int64_t x, int64_t y) { return S[size_t(x * r + x)] < S[size_t(y * r + y)]; });
      for (int64_t j = 0; j < r; ++j) {
        int64_t o = ord[size_t(j)];
        double v = S[size_t(o * r + o)] / scale;
        w[j] = float(opt.clamp_nonneg ? std::max(v, 0.0) : v);
        const double* src = Vt.data() + o * r;
        for (int64_t i = 0; i < r; ++i) V[i * r + j] = float(src[i]);
      }
    }
  });
  if (failed.load())
    throw Error(ErrorCode::Numerical, "eighBatched: a decomposition did not converge, even in float64");
  return retried.load();
}

}  // namespace kfac::cpu
