// Symmetric rank-K update on the GEMM micro-kernels: C (lower) ← beta·C + alpha·X̃ᵀX̃.
//
// X is K×d row-major and X̃ = X, or [X | 1] with an implicit ones column (n = d + 1); C is n×n.
// X̃ is both operands of the product, so each depth block X̃[pc:pc+kc, :] is packed once per
// block, in the two layouts of gemm_kernels.h: MR-row k-major A micro-panels and NR-column
// k-major B panels (the ones column is written into the panels, never into memory of X).
// Only lower-triangle tiles are computed: a tile that crosses the diagonal is computed in full
// into a local buffer and only its lower part is stored; tiles above it are skipped. alpha and
// beta are applied in the micro-kernel's store (beta on the first depth block, 1 after).
//
// Work is cut into units, each a block of up to MC rows × a range of B panels; with a team,
// units are cut so that they have about the same tile area (the triangle is uneven: the first
// rows have few columns) and claimed from an atomic counter, largest rows first, so a member
// slowed by other load only takes fewer. Panels are packed once for all units; a team packs
// many depth blocks at a time so that its members meet only a few times a call (worker()).
// Each element of C is computed by the same tile, with the same depth blocks, whatever the
// team size, so the result does not depend on the thread count.
// Optimised even when the build passes no -O flag (the kernels are useless at -O0).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#endif
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "../core/error.h"
#include "cpu_features.h"
#include "aligned_scratch.h"
#include "factor.h"
#include "gemm_kernels.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {

using gemm::APack;
using gemm::KernelSet;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

const KernelSet& kernels_now() {
  switch (kernel_isa()) {
    case KernelIsa::Avx512: return gemm::kernels_avx512();
    case KernelIsa::Avx2: return gemm::kernels_avx2();
    default: return gemm::kernels_generic();
  }
}

// Panel storage of the calling thread.
thread_local AlignedScratch t_panels("syrk");

// Rows [i0, i1) (i0 a multiple of MR) × B panels [p0, p1) of C.
struct Unit {
  int64_t i0, i1, p0, p1;
};
thread_local std::vector<Unit> t_units;

struct Job {
  const KernelSet* ks;
  int64_t d, n, K;  // columns of X, of X̃ (d or d + 1), depth
  const float* X;
  int64_t ldx;
  float alpha, beta;
  float* C;
  int64_t ldc;
  bool mirror;                 // also write the upper triangle
  int64_t kc, steps;          // depth blocking
  int64_t a_panels, b_panels;  // ceil(n / MR), ceil(n / NR)
  APack a_layout;              // of the A micro-panels (see Packers)
  int64_t a_panel;             // floats per A micro-panel: MR·kc (k-major) or MR·KCS (row-major)
  int64_t blocks;              // depth blocks per phase (packed together)
  float* apack;                // phase block t: A panels at apack + t·a_panels·MR·kc,
  float* bpack;                //   B panels at bpack + t·b_panels·NR·kc
  const Unit* units;
  int64_t n_units, pack_units, per_phase, phases;
};

// The packed panels of one depth block: A micro-panel q at a + q·a_panel, B panel q at b + q·NR·kc.
struct Panels {
  float* a;
  float* b;
};

// The packers for one ISA's tile, with the tile sizes known at compile time (so the short
// row copies are inlined). Columns c >= d of X̃ are the ones column (c == d) when n > d.
// Both walk X row by row (a column-strip walk would touch kc lines one row stride apart, which
// alias in the caches when the stride is a power of two) and scatter each row into the panels.
template <int MR, int NR, APack LAYOUT, int KCS>
struct Packer {
  // A micro-panels [q0, q1): panel q holds rows c0 = q·MR … of X̃ᵀ, k-major (dst[p·MR + i]) or
  // row-major (dst[i·KCS + p]).
  static void pack_a(const Job& J, const Panels& P, int64_t pc, int64_t kc, int64_t q0, int64_t q1) {
    constexpr int64_t si = LAYOUT == APack::KMajor ? 1 : KCS, sp = LAYOUT == APack::KMajor ? MR : 1;
    const int64_t full = std::min(q1, J.d / MR);  // panels [q0, full) have MR real columns
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = J.X + (pc + p) * J.ldx;
      for (int64_t q = q0; q < full; ++q) {
        float* dst = P.a + q * J.a_panel + p * sp;
        for (int i = 0; i < MR; ++i) dst[i * si] = src[q * MR + i];
      }
      for (int64_t q = std::max(q0, full); q < q1; ++q) {
        const int64_t c0 = q * MR, m = std::min<int64_t>(MR, J.n - c0);
        const int64_t real = std::clamp<int64_t>(J.d - c0, 0, m);
        float* dst = P.a + q * J.a_panel + p * sp;
        for (int64_t i = 0; i < real; ++i) dst[i * si] = src[c0 + i];
        if (real < m) dst[real * si] = 1.f;
      }
    }
  }
  // B panels [q0, q1): panel q holds columns c0 = q·NR … of X̃, k-major: dst[p·NR + j],
  // zero past the last column (the kernel reads whole panel rows).
  static void pack_b(const Job& J, const Panels& P, int64_t pc, int64_t kc, int64_t q0, int64_t q1) {
    const int64_t full = std::min(q1, J.d / NR);
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = J.X + (pc + p) * J.ldx;
      for (int64_t q = q0; q < full; ++q) {
        float* dst = P.b + q * NR * J.kc + p * NR;
        for (int j = 0; j < NR; ++j) dst[j] = src[q * NR + j];
      }
      for (int64_t q = std::max(q0, full); q < q1; ++q) {
        const int64_t c0 = q * NR, m = std::min<int64_t>(NR, J.n - c0);
        const int64_t real = std::clamp<int64_t>(J.d - c0, 0, m);
        float* dst = P.b + q * NR * J.kc + p * NR;
        for (int64_t j = 0; j < real; ++j) dst[j] = src[c0 + j];
        for (int64_t j = real; j < NR; ++j) dst[j] = 0.f;
        if (real < m) dst[real] = 1.f;
      }
    }
  }
};

using PackFn = void (*)(const Job&, const Panels&, int64_t, int64_t, int64_t, int64_t);

// The A layout each micro-kernel runs fastest with on XᵀX, measured at d = 512, R = 2048 on an
// AVX-512 machine: k-major for the AVX-512 and AVX2 tiles (row-major: 2.4× and 1.7× slower),
// row-major for the portable one (its compiled loop vectorises better that way: 3.9× faster).
struct Packers {
  PackFn a, b;
  APack layout;
};

template <int MR, int NR, APack LAYOUT, int KCS>
Packers packers_for() {
  return {&Packer<MR, NR, LAYOUT, KCS>::pack_a, &Packer<MR, NR, LAYOUT, KCS>::pack_b, LAYOUT};
}

Packers packers(const KernelSet& ks) {
  if (ks.mr == 14 && ks.nr == 32 && ks.kcs == 512) return packers_for<14, 32, APack::KMajor, 512>();
  if (ks.mr == 6 && ks.nr == 16 && ks.kcs == 512) return packers_for<6, 16, APack::KMajor, 512>();
  if (ks.mr == 4 && ks.nr == 16 && ks.kcs == 512) return packers_for<4, 16, APack::RowMajor, 512>();
  throw Error(ErrorCode::Internal, "syrk: no packer for this micro-kernel tile", "", "",
              std::to_string(ks.mr) + "x" + std::to_string(ks.nr));
}

constexpr int kMaxTile = 14 * 32;

// C[unit] (+)= alpha · Apanels · Bpanels of one depth block; beta is the first block's beta,
// then 1. Tiles above the diagonal are skipped, tiles crossing it are stored masked.
void compute_unit(const Job& J, const Panels& P, const Unit& u, int64_t kc, float beta) {
  const KernelSet& ks = *J.ks;
  const int64_t MR = ks.mr, NR = ks.nr;
  alignas(64) float tmp[kMaxTile];
  for (int64_t pj = u.p0; pj < u.p1; ++pj) {
    const int64_t j = pj * NR;
    const int nr = int(std::min(NR, J.n - j));
    const float* pb = P.b + pj * NR * J.kc;
    // The first micro-panel with a row on or below the diagonal of this panel.
    for (int64_t i = std::max(u.i0, j / MR * MR); i < u.i1; i += MR) {
      const int mr = int(std::min(MR, u.i1 - i));
      const float* pa = P.a + (i / MR) * J.a_panel;
      float* c = J.C + i * J.ldc + j;
      if (j + nr - 1 <= i) {
        ks.kernel(J.a_layout, mr, nr, kc, pa, pb, c, J.ldc, J.alpha, beta);
        continue;
      }
      if (j > i + mr - 1) continue;  // wholly above the diagonal
      ks.kernel(J.a_layout, mr, nr, kc, pa, pb, tmp, NR, J.alpha, 0.f);
      for (int r = 0; r < mr; ++r) {
        const int64_t lim = std::min<int64_t>(nr, i + r - j + 1);
        float* cr = c + r * J.ldc;
        const float* tr = tmp + r * NR;
        if (beta == 0.f)
          for (int64_t q = 0; q < lim; ++q) cr[q] = tr[q];
        else
          for (int64_t q = 0; q < lim; ++q) cr[q] = tr[q] + beta * cr[q];
      }
    }
  }
}

// C[j][i] = C[i][j] for the elements j < i of rows [i0, i1) × columns [c0, c1), in 16×16
// blocks through a local buffer (each source line read once while still in cache from the
// unit's last depth block, each destination line written once; rows a power-of-two stride
// apart share cache sets, so neither side has to stay resident). The destinations lie in the
// strict upper triangle, which no unit computes, so units mirror concurrently.
void mirror_region(float* C, int64_t ldc, int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
  constexpr int64_t B = 16;
  alignas(64) float t[B][B];
  for (int64_t ib = i0; ib < i1; ib += B) {
    const int64_t ni = std::min(B, i1 - ib);
    for (int64_t jb = c0; jb < std::min(c1, ib + ni - 1); jb += B) {
      const int64_t nj = std::min(B, c1 - jb);
      for (int64_t ii = 0; ii < ni; ++ii) {
        const float* src = C + (ib + ii) * ldc + jb;
        for (int64_t jj = 0; jj < nj; ++jj) t[jj][ii] = src[jj];
      }
      for (int64_t jj = 0; jj < nj; ++jj) {
        const int64_t j = jb + jj;
        float* dst = C + j * ldc + ib;
        for (int64_t ii = std::max<int64_t>(0, j + 1 - ib); ii < ni; ++ii) dst[ii] = t[jj][ii];
      }
    }
  }
}

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

Panels panels_of(const Job& J, int64_t t) {
  return {J.apack + t * J.a_panels * J.a_panel, J.bpack + t * J.b_panels * J.ks->nr * J.kc};
}

// Work of one phase (`blocks` depth blocks): pack units (one per depth block and member, each
// packing a share of the block's panels), then the compute units, each running its tiles
// through every depth block of the phase (its C tiles stay in cache meanwhile). A unit starts
// once every unit of the earlier sub-phases is done (a count of finished units). A team of one
// packs one depth block per phase (the panels stay in cache); a team packs as many as fit a
// bounded buffer, so that members meet only a few times per call. Allocates nothing, throws
// nothing.
void worker(const Job& J, const Packers& pk, Queue& q) {
  const int64_t total = J.phases * J.per_phase;
  for (;;) {
    const int64_t u = q.next.v.fetch_add(1, std::memory_order_relaxed);
    if (u >= total) return;
    const int64_t f = u / J.per_phase, r = u % J.per_phase;
    if (r < J.pack_units) {
      wait_for(q.done.v, f * J.per_phase);
      const int64_t share = J.pack_units / J.blocks, t = r / share, h = r % share;
      const int64_t s = f * J.blocks + t, pc = s * J.kc;
      if (s < J.steps) {
        const int64_t kc = std::min(J.kc, J.K - pc);
        const Panels P = panels_of(J, t);
        pk.a(J, P, pc, kc, J.a_panels * h / share, J.a_panels * (h + 1) / share);
        pk.b(J, P, pc, kc, J.b_panels * h / share, J.b_panels * (h + 1) / share);
      }
    } else {
      wait_for(q.done.v, f * J.per_phase + J.pack_units);
      const Unit& un = J.units[r - J.pack_units];
      for (int64_t t = 0; t < J.blocks; ++t) {
        const int64_t s = f * J.blocks + t, pc = s * J.kc;
        if (s >= J.steps) break;
        compute_unit(J, panels_of(J, t), un, std::min(J.kc, J.K - pc), s == 0 ? J.beta : 1.f);
        if (J.mirror && s == J.steps - 1)
          mirror_region(J.C, J.ldc, un.i0, un.i1, un.p0 * J.ks->nr, std::min(J.n, un.p1 * J.ks->nr));
      }
    }
    q.done.v.fetch_add(1, std::memory_order_acq_rel);
  }
}

// Below this much work (d²·K multiply-adds) one thread is faster than waking the pool.
constexpr double kThreadWork = 1.0e6;
// Panel floats a team packs per phase (16 MiB).
constexpr int64_t kPhaseFloats = int64_t(4) << 20;

// Cuts the lower triangle into units: row blocks of MC rows, last (largest) first; with a
// team, each block's panels are split so that a unit has about 1/(6·team) of the triangle's
// area (at least MC×NR), which the dynamic claiming then balances. Units share the packed
// panels, so small ones cost little (an A block re-read from L2).
void plan_units(const KernelSet& ks, int64_t n, int nt, std::vector<Unit>& units) {
  units.clear();
  const int64_t NR = ks.nr, MC = ks.mc;
  const double target = std::max(0.5 * double(n) * double(n) / (6.0 * nt), double(MC * NR));
  for (int64_t b = ceil_div(n, MC) - 1; b >= 0; --b) {
    const int64_t i0 = b * MC, i1 = std::min(n, i0 + MC);
    const int64_t panels = ceil_div(i1, NR);
    const int64_t area_cols = std::min(n, panels * NR);
    const int64_t chunks =
        nt == 1 ? 1
                : std::clamp<int64_t>(int64_t(double(i1 - i0) * double(area_cols) / target + 0.5),
                                      1, panels);
    for (int64_t c = 0; c < chunks; ++c) {
      // Diagonal-side chunks first: they hold the masked tiles.
      const int64_t p1 = panels - panels * c / chunks, p0 = panels - panels * (c + 1) / chunks;
      if (p1 > p0) units.push_back({i0, i1, p0, p1});
    }
  }
}

// Lower triangle (diagonal included) of C[n×n] ← beta · C (beta == 0 writes zeros).
void scale_lower(int64_t n, float beta, float* C, int64_t ldc) {
  if (beta == 1.f) return;
  for (int64_t i = 0; i < n; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.f)
      std::fill(c, c + i + 1, 0.f);
    else
      for (int64_t j = 0; j <= i; ++j) c[j] *= beta;
  }
}

}  // namespace

void syrk_lower_t(int64_t d, int64_t K, float alpha, const float* X, int64_t ldx, float beta,
                  float* C, int64_t ldc, bool ones, bool mirror) {
  const int64_t n = d + (ones ? 1 : 0);
  if (n <= 0) return;
  if (K <= 0 || alpha == 0.f) {
    scale_lower(n, beta, C, ldc);
    if (mirror) mirror_lower(C, n, ldc);
    return;
  }
  const KernelSet& ks = kernels_now();
  const Packers pk = packers(ks);
  const int64_t MR = ks.mr, NR = ks.nr;

  Job J{};
  J.ks = &ks;
  J.d = d;
  J.n = n;
  J.K = K;
  J.X = X;
  J.ldx = ldx;
  J.alpha = alpha;
  J.beta = beta;
  J.C = C;
  J.ldc = ldc;
  J.mirror = mirror;
  // Depth blocks of near-equal size, at most the kernel's KC.
  J.steps = ceil_div(K, int64_t(ks.kc));
  J.kc = ceil_div(K, J.steps);
  J.a_panels = ceil_div(n, MR);
  J.b_panels = ceil_div(n, NR);
  J.a_layout = pk.layout;
  J.a_panel = MR * (pk.layout == APack::KMajor ? J.kc : int64_t(ks.kcs));

  int nt = 1;
  if (double(n) * double(n) * double(K) >= kThreadWork) nt = num_threads();
  std::vector<Unit>& units = t_units;
  plan_units(ks, n, nt, units);
  nt = int(std::min<int64_t>(nt, int64_t(units.size())));
  J.units = units.data();
  J.n_units = int64_t(units.size());
  // Depth blocks per phase: one for a team of one, else as many as kPhaseFloats hold.
  const int64_t block_floats = J.a_panels * J.a_panel + J.b_panels * NR * J.kc;
  J.blocks = nt == 1 ? 1 : std::clamp<int64_t>(kPhaseFloats / block_floats, 1, J.steps);
  J.phases = ceil_div(J.steps, J.blocks);
  J.pack_units = J.blocks * nt;
  J.per_phase = J.pack_units + J.n_units;
  const int64_t a_floats = (J.blocks * J.a_panels * J.a_panel + 15) / 16 * 16;  // B 64-byte aligned
  float* buf = t_panels.reserve(size_t(a_floats + J.blocks * J.b_panels * NR * J.kc));
  J.apack = buf;
  J.bpack = buf + a_floats;

  Queue q;
  if (nt == 1) {
    worker(J, pk, q);
    return;
  }
  struct Ctx {
    const Job& J;
    const Packers& pk;
    Queue& q;
  } ctx{J, pk, q};
  const Ctx* cx = &ctx;
  run_team_elastic(nt, [cx](int, int, Barrier&) { worker(cx->J, cx->pk, cx->q); });
}

}  // namespace kfac::cpu
