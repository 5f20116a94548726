// Single-precision GEMM driver, row-major: C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C.
//
// GotoBLAS/BLIS structure. For each block of NC columns (jc) and KC depth (pc), the team packs
// op(B)[pc:pc+kc, jc:jc+nc] into k-major NR-wide panels (shared, one barrier), then every
// thread walks its own rectangle of C: for each block of MC rows it packs op(A) into MR-row
// panels (its own buffer), and calls the micro-kernel for every MR×NR tile, B panel outer,
// A panel inner (the B panel stays in L1/L2, the A block in L2). The micro-kernel and the
// blocking sizes come from the ISA chosen at run time (gemm_kernels.h).
// Optimised even when the build passes no -O flag (the kernels are useless at -O0).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>

#include "../core/error.h"
#include "cpu_features.h"
#include "gemm_kernels.h"
#include "gemm_skinny.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {

using gemm::APack;
using gemm::KernelSet;

// Grow-only, 64-byte aligned scratch owned by one thread.
class Scratch {
 public:
  ~Scratch() { std::free(data_); }
  float* reserve(size_t floats) {
    if (floats > cap_) {
      std::free(data_);
      data_ = nullptr;
      cap_ = 0;
      size_t bytes = (floats * sizeof(float) + 63) & ~size_t(63);
      void* p = std::aligned_alloc(64, bytes);
      if (!p)
        throw Error(ErrorCode::OutOfMemory, "sgemm: cannot allocate packing buffers", "", "",
                    std::to_string(bytes) + " bytes");
      data_ = static_cast<float*>(p);
      cap_ = bytes / sizeof(float);
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t cap_ = 0;
};

thread_local Scratch t_scratch;

const KernelSet& kernels_for(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::Avx512: return gemm::kernels_avx512();
    case KernelIsa::Avx2: return gemm::kernels_avx2();
    default: return gemm::kernels_generic();
  }
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
// Splits n into ceil(n/cap) near-equal blocks; returns the block size rounded up to `align`.
inline int64_t balanced_block(int64_t n, int64_t cap, int64_t align) {
  int64_t blocks = ceil_div(n, cap);
  return std::min(round_up(ceil_div(n, blocks), align), round_up(cap, align));
}

// C[M×N] *= beta (beta == 0 writes zeros without reading C).
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  if (beta == 1.f) return;
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.f)
      std::fill(c, c + N, 0.f);
    else
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
  }
}

struct Problem {
  bool ta, tb;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
};

struct Plan {
  int64_t kc, nc, mc;  // blocking actually used (kc, nc balanced; mc the cap per thread)
  int tm, tn;          // thread grid: tm row groups × tn column groups
  float* bpack;        // shared B panels: kc × round_up(nc, NR)
  float* apack;        // per thread: apack + tid · a_stride
  int64_t a_stride;
};

// One member of the team: packs its share of each B block, then computes its rectangle.
void gemm_member(const KernelSet& ks, const Problem& P, const Plan& L, int tid, int nt,
                 Barrier& bar) {
  const int64_t MR = ks.mr, NR = ks.nr;
  const int r = tid / L.tn, q = tid % L.tn;
  const int64_t mt = ceil_div(P.M, MR), ntl = ceil_div(P.N, NR);
  const int64_t m0 = std::min(P.M, mt * r / L.tm * MR);
  const int64_t m1 = std::min(P.M, mt * (r + 1) / L.tm * MR);
  const int64_t n0 = std::min(P.N, ntl * q / L.tn * NR);
  const int64_t n1 = std::min(P.N, ntl * (q + 1) / L.tn * NR);
  const int64_t mcb = m1 > m0 ? balanced_block(m1 - m0, L.mc, MR) : 0;
  float* apack = L.apack + tid * L.a_stride;

  for (int64_t jc = 0; jc < P.N; jc += L.nc) {
    const int64_t nc = std::min(L.nc, P.N - jc);
    const int64_t panels = ceil_div(nc, NR);
    for (int64_t pc = 0; pc < P.K; pc += L.kc) {
      const int64_t kc = std::min(L.kc, P.K - pc);
      // Pack this member's share of the B panels.
      const int64_t p0 = panels * tid / nt, p1 = panels * (tid + 1) / nt;
      if (p1 > p0)
        ks.pack_b(P.tb, P.B, P.ldb, pc, kc, jc + p0 * NR, std::min(nc, p1 * NR) - p0 * NR, ks.nr,
                  L.bpack + p0 * kc * NR);
      bar.wait();
      const float beta = pc == 0 ? P.beta : 1.f;
      const int64_t js = std::max(n0, jc), je = std::min(n1, jc + nc);
      if (js < je) {
        for (int64_t ic = m0; ic < m1; ic += mcb) {
          const int64_t mc = std::min(mcb, m1 - ic);
          const APack layout =
              gemm::pack_a(P.ta, P.A, P.lda, ic, mc, pc, kc, ks.mr, ks.kcs, apack);
          for (int64_t j = js; j < je; j += NR) {
            const int nr = int(std::min(NR, je - j));
            const float* pb = L.bpack + ((j - jc) / NR) * kc * NR;
            for (int64_t i = 0; i < mc; i += MR) {
              const int mr = int(std::min(MR, mc - i));
              ks.kernel(layout, mr, nr, kc, apack + (i / MR) * MR * ks.kcs, pb,
                        P.C + (ic + i) * P.ldc + j, P.ldc, P.alpha, beta);
            }
          }
        }
      }
      bar.wait();  // nobody may repack B while a member still reads it
    }
  }
}

// Below this many flops (2·M·N·K) one thread is faster than waking the pool.
constexpr double kThreadFlops = 3.0e6;

void sgemm_impl(const Problem& P, int max_threads) {
  const KernelSet& ks = kernels_for(kernel_isa());
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t mt = ceil_div(P.M, MR), ntl = ceil_div(P.N, NR);

  int nt = 1;
  const double flops = 2.0 * double(P.M) * double(P.N) * double(P.K);
  if (flops >= kThreadFlops) nt = int(std::min<int64_t>({int64_t(max_threads), mt * ntl, 256}));

  // Thread grid: the split of C with the fewest tiles on the busiest member; ties go to
  // splitting rows (members then share every packed B panel).
  Plan L{};
  L.tm = nt;
  L.tn = 1;
  int64_t best = -1;
  for (int tm = nt; tm >= 1; --tm) {
    if (nt % tm) continue;
    int tn = nt / tm;
    int64_t cost = ceil_div(mt, tm) * ceil_div(ntl, tn);
    if (best < 0 || cost < best) best = cost, L.tm = tm, L.tn = tn;
  }

  L.kc = balanced_block(P.K, ks.kc, 1);
  L.nc = balanced_block(P.N, ks.nc, NR);
  L.mc = ks.mc;
  const int64_t rows_per_member = ceil_div(mt, L.tm) * MR;
  const int64_t mcap = std::min<int64_t>(round_up(L.mc, MR), rows_per_member);
  L.a_stride = round_up(ceil_div(mcap, MR) * MR * ks.kcs, 16);
  const int64_t b_floats = L.kc * round_up(L.nc, NR);
  float* buf = t_scratch.reserve(size_t(b_floats + nt * L.a_stride));
  L.bpack = buf;
  L.apack = buf + b_floats;
  L.mc = mcap;

  run_team(nt, [&](int tid, int n, Barrier& bar) {
    // run_team may give fewer members than asked (nested call): re-plan for one.
    if (n == nt) {
      gemm_member(ks, P, L, tid, n, bar);
    } else {
      Plan one = L;
      one.tm = one.tn = 1;
      gemm_member(ks, P, one, tid, n, bar);
    }
  });
}

}  // namespace

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {
    scale_c(M, N, beta, C, ldc);
    return;
  }
  if (gemm::skinny_applies(M, N)) {
    float* work = t_scratch.reserve(size_t(gemm::skinny_work_floats(M, N, K)));
    gemm::sgemm_skinny(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, work);
    return;
  }
  Problem P{transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
  sgemm_impl(P, num_threads());
}

void sgemm_strided_batched(int64_t batch, bool transA, bool transB, int64_t M, int64_t N,
                           int64_t K, float alpha, const float* A, int64_t lda, int64_t strideA,
                           const float* B, int64_t ldb, int64_t strideB, float beta, float* C,
                           int64_t ldc, int64_t strideC) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const int threads = num_threads();
  // Many small products: one member per matrix instead of splitting each one.
  // (strideC == 0 makes every product write the same C: keep those in order.)
  if (batch > 1 && threads > 1 && strideC != 0 && flops < 4.0 * kThreadFlops) {
    std::exception_ptr err;
    std::atomic<int> failed{0};
    run_team(int(std::min<int64_t>(batch, threads)), [&](int tid, int nt, Barrier&) {
      try {
        for (int64_t i = batch * tid / nt; i < batch * (tid + 1) / nt; ++i)
          sgemm(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta,
                C + i * strideC, ldc);
      } catch (...) {
        if (failed.exchange(1) == 0) err = std::current_exception();
      }
    });
    if (err) std::rethrow_exception(err);
    return;
  }
  for (int64_t i = 0; i < batch; ++i)
    sgemm(transA, transB, M, N, K, alpha, A + i * strideA, lda, B + i * strideB, ldb, beta,
          C + i * strideC, ldc);
}

}  // namespace kfac::cpu
