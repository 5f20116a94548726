// Single-precision GEMM driver, row-major: C[M×N] = alpha · op(A)[M×K] · op(B)[K×N] + beta · C.
//
// The classic packed structure (as in BLIS). For each block of NC columns (jc) and KC depth
// (pc), the team packs op(B)[pc:pc+kc, jc:jc+nc] into k-major NR-wide panels (one shared
// buffer), then computes C in blocks of about MC rows: each block packs its rows of op(A) into
// MR-row panels (the member's own buffer) and calls the micro-kernel for every MR×NR tile,
// B panel outer, A panel inner (the B panel stays in L1/L2, the A block in L2). Members claim
// these pieces of work from a shared queue (see Plan). The micro-kernel and the blocking sizes
// come from the ISA chosen at run time (gemm_kernels.h); M == 1 or N == 1 goes to
// gemm_skinny.cpp.
// Scratch: one grow-only, 64-byte aligned buffer per calling thread, no allocation once warm.
// Optimised even when the build passes no -O flag (the kernels are useless at -O0).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <thread>

#include "../core/error.h"
#include "cpu_features.h"
#include "aligned_scratch.h"
#include "gemm_kernels.h"
#include "gemm_skinny.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {

using gemm::APack;
using gemm::KernelSet;

thread_local AlignedScratch t_scratch("sgemm");

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

// How one GEMM is cut into units of work. Each (jc, pc) step of the loop nest is two phases:
// `pack_units` units that pack slices of the shared B block, then `rb × cc` compute units,
// each a block of rows × a range of B panels that packs its own A rows. Units are numbered in
// loop order and claimed from an atomic counter; a unit starts once every unit of the earlier
// phases is done (a count of finished units, which by that rule only reaches a phase's first
// index after all earlier units finished). A member that is late or never scheduled holds
// nobody up: whoever is running takes the next unit. The same code runs a team of one.
struct Plan {
  int64_t kc, nc;       // depth and column blocking (balanced)
  int64_t steps_k;      // ceil(K / kc)
  int64_t rb, cc;       // row blocks × column chunks per step
  int64_t pack_units;   // B-packing units per step
  int64_t units;        // units per step = pack_units + rb · cc
  float* bpack;         // shared B block: kc × round_up(nc, NR)
  float* apack;         // per member: apack + tid · a_stride
  int64_t a_stride;
};

struct alignas(64) Counter {
  std::atomic<int64_t> v{0};
  char pad[64 - sizeof(std::atomic<int64_t>)];
};

struct Queue {
  Counter next, done;
};

inline void wait_for(const std::atomic<int64_t>& done, int64_t target) {
  for (int spins = 0; done.load(std::memory_order_acquire) < target; ++spins) {
#if defined(__x86_64__) || defined(__i386__)
    if (spins < 2000) {
      __builtin_ia32_pause();
      continue;
    }
#endif
    std::this_thread::yield();
  }
}

// Runs units until none is left.
void gemm_worker(const KernelSet& ks, const Problem& P, const Plan& L, Queue& q, int tid) {
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t mt = ceil_div(P.M, MR);
  const int64_t steps = ceil_div(P.N, L.nc) * L.steps_k;
  const int64_t total = steps * L.units;
  float* apack = L.apack + tid * L.a_stride;
  for (;;) {
    const int64_t u = q.next.v.fetch_add(1, std::memory_order_relaxed);
    if (u >= total) return;
    const int64_t s = u / L.units, r = u % L.units;
    const int64_t jc = (s / L.steps_k) * L.nc, pc = (s % L.steps_k) * L.kc;
    const int64_t nc = std::min(L.nc, P.N - jc), kc = std::min(L.kc, P.K - pc);
    const int64_t panels = ceil_div(nc, NR);
    if (r < L.pack_units) {
      // Pack panels [p0, p1) of B[pc:pc+kc, jc:jc+nc].
      wait_for(q.done.v, s * L.units);
      const int64_t p0 = panels * r / L.pack_units, p1 = panels * (r + 1) / L.pack_units;
      if (p1 > p0)
        ks.pack_b(P.tb, P.B, P.ldb, pc, kc, jc + p0 * NR, std::min(nc, p1 * NR) - p0 * NR, ks.nr,
                  L.bpack + p0 * kc * NR);
    } else {
      // C[rows, panels] (+)= A[rows, pc:pc+kc] · Bblock[:, panels]
      wait_for(q.done.v, s * L.units + L.pack_units);
      const int64_t c = r - L.pack_units, bi = c / L.cc, bj = c % L.cc;
      const int64_t i0 = std::min(P.M, mt * bi / L.rb * MR);
      const int64_t i1 = std::min(P.M, mt * (bi + 1) / L.rb * MR);
      const int64_t p0 = panels * bj / L.cc, p1 = panels * (bj + 1) / L.cc;
      if (i1 > i0 && p1 > p0) {
        const int64_t mc = i1 - i0;
        const APack layout = gemm::pack_a(P.ta, P.A, P.lda, i0, mc, pc, kc, ks.mr, ks.kcs, apack);
        const float beta = pc == 0 ? P.beta : 1.f;
        for (int64_t pj = p0; pj < p1; ++pj) {
          const int64_t j = jc + pj * NR;
          const int nr = int(std::min(NR, jc + nc - j));
          const float* pb = L.bpack + pj * kc * NR;
          for (int64_t i = 0; i < mc; i += MR) {
            const int mr = int(std::min(MR, mc - i));
            ks.kernel(layout, mr, nr, kc, apack + (i / MR) * MR * ks.kcs, pb,
                      P.C + (i0 + i) * P.ldc + j, P.ldc, P.alpha, beta);
          }
        }
      }
    }
    q.done.v.fetch_add(1, std::memory_order_acq_rel);
  }
}

// Below this many flops (2·M·N·K) one thread is faster than waking the pool.
constexpr double kThreadFlops = 2.0e6;

void sgemm_impl(const Problem& P, int max_threads) {
  const KernelSet& ks = kernels_for(kernel_isa());
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t mt = ceil_div(P.M, MR);

  int nt = 1;
  const double flops = 2.0 * double(P.M) * double(P.N) * double(P.K);
  if (flops >= kThreadFlops)
    nt = int(std::min<int64_t>({int64_t(max_threads), mt * ceil_div(P.N, NR), 256}));

  Plan L{};
  L.kc = balanced_block(P.K, ks.kc, 1);
  L.nc = balanced_block(P.N, ks.nc, NR);
  L.steps_k = ceil_div(P.K, L.kc);
  // Row blocks of at most mc rows, a multiple of the team size so members share them evenly;
  // too few row panels for the team: split the columns instead.
  L.rb = std::min(mt, round_up(ceil_div(P.M, ks.mc), nt));
  L.cc = L.rb < nt ? std::min<int64_t>(nt, ceil_div(L.nc, NR)) : 1;
  L.pack_units = nt;
  L.units = L.pack_units + L.rb * L.cc;
  L.a_stride = round_up(ceil_div(mt, L.rb) * MR * ks.kcs, 16);
  const int64_t b_floats = L.kc * round_up(L.nc, NR);
  float* buf = t_scratch.reserve(size_t(b_floats + nt * L.a_stride));
  L.bpack = buf;
  L.apack = buf + b_floats;

  Queue q;
  if (nt == 1) {
    gemm_worker(ks, P, L, q, 0);
    return;
  }
  // One pointer of capture keeps the std::function free of heap allocation.
  struct Ctx {
    const KernelSet& ks;
    const Problem& P;
    const Plan& L;
    Queue& q;
  } ctx{ks, P, L, q};
  const Ctx* c = &ctx;
  run_team_elastic(nt, [c](int tid, int, Barrier&) {
    gemm_worker(c->ks, c->P, c->L, c->q, tid);
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
    std::atomic<int64_t> next{0};
    run_team_elastic(int(std::min<int64_t>(batch, threads)), [&](int, int, Barrier&) {
      try {
        for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < batch;)
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
