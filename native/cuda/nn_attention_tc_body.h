// Attention on tensor cores: the bodies of nn_attention_body.h with their products — S = Q Kᵀ,
// dP = dO Vᵀ, O += P V, dQ += dS K, dV += (P·M)ᵀ dO, dK += dSᵀ Q — as 16×16×16 bf16 tile
// products with float32 accumulation (hd_mma.h: wmma on the device, loops in the emulation).
// For bf16 activations whose head dimension is a multiple of 16 (attn_tc_applies); the CUDA-core
// bodies of nn_attention_body.h stay the reference and the path of every other case.
//
// Same tiles (32 queries × 32 keys, 128 threads = 4 warps), grid, phases, masks, dropout
// counters and outputs as the CUDA-core bodies; what differs:
//   - Q, K, V, dO stay bf16 in shared memory (rows of D + 8: wmma's leading dimension is a
//     multiple of 8, and the stride staggers the rows over the banks);
//   - S and dP are float32 tiles written by the tile products; the softmax and dS phases read
//     them as before and write P·M and dS rounded once to bf16 (the operands of the next tile
//     product; l, D and dbias use the float32 values), which FlashAttention-2 does too;
//   - the accumulators O, dQ, dK, dV are float32 tiles in shared memory, loaded into and stored
//     from the warp's fragments by each tile product (no fragment crosses a barrier).
// Error against the CUDA-core bodies: the rounding of P·M and dS, at most u = 2⁻⁸ relative per
// term (out: u·Σ_j P_j|V_j| ≤ u·max|V|), and the order of the float32 sums.
#pragma once
#include "hd_mma.h"
#include "nn_attention_body.h"

namespace kfac::nnk {

// Whether the tensor-core bodies can run a call: bf16 storage and a head dimension that is a
// multiple of the 16×16×16 tile (up to kAttnMaxHeadDim).
constexpr bool attn_tc_storage(const float*) { return false; }
constexpr bool attn_tc_storage(const hd::bf16*) { return true; }
inline bool attn_tc_applies(int64_t D) { return D % hd::kTile == 0 && D <= kAttnMaxHeadDim; }

// Leading dimensions (elements): bf16 [rows, D] tiles, float32 [32, 32] score tiles, bf16 [32, 32]
// probability tiles, float32 [rows, D] accumulators. Every 16-row tile then starts at a multiple
// of 32 bytes (hd_mma.h), given 32-byte-aligned regions (AttnCarve).
KFAC_HD int attn_tc_ldh(int64_t D) { return int(D) + 8; }
constexpr int kAttnTcLdS = kAttnBK + 4;
constexpr int kAttnTcLdP = kAttnBK + 8;
KFAC_HD int attn_tc_ldo(int64_t D) { return int(D) + 4; }

// Shared memory cut into 32-byte-aligned regions, in order; from a null base it only counts.
struct AttnCarve {
  unsigned char* base;
  int64_t off = 0;
  template <class X>
  KFAC_HD X* take(int64_t n) {
    X* r = reinterpret_cast<X*>(base + off);
    off += (n * int64_t(sizeof(X)) + 31) / 32 * 32;
    return r;
  }
};

// Bytes of a body's shared layout Sh (its constructor carves from a null base and reports them).
template <class Sh>
int64_t attn_tc_bytes(int64_t D) {
  int64_t n = 0;
  Sh(nullptr, D, &n);
  return n;
}

// C[rows × cols] (+)= A·B by 16×16 tiles over the block's warps (each warp its tiles, in order).
template <bool TransA, bool TransB>
KFAC_HD void attn_tc_gemm(float* C, int ldc, const hd::bf16* A, int lda, const hd::bf16* B, int ldb, int rows,
                          int cols, int K, bool acc, const hd::Idx& i) {
  const int tc = cols / hd::kTile, n = (rows / hd::kTile) * tc;
  for (int t = hd::warp_of(i); t < n; t += hd::warps_of(i)) {
    const int r0 = (t / tc) * hd::kTile, c0 = (t % tc) * hd::kTile;
    const hd::bf16* a = A + (TransA ? r0 : int64_t(r0) * lda);
    const hd::bf16* b = B + (TransB ? int64_t(c0) * ldb : c0);
    hd::mma_tile<TransA, TransB>(C + int64_t(r0) * ldc + c0, ldc, a, lda, b, ldb, K, acc, i);
  }
}

// The score of (query i0 + r, key j0 + j) from the raw product: scale·raw (+ bias), −inf where
// the query does not see the key (or r ≥ m, j0 + j ≥ Tk).
KFAC_HD float attn_tc_score(const AttnParams& p, int64_t b, int64_t h, int64_t i0, int64_t m, int64_t j0, int r, int j,
                            float raw) {
  if (r >= m || j0 + j >= p.Tk || !attn_sees(p, b, i0 + r, j0 + j)) return -attn_inf();
  float s = raw * p.scale;
  if (p.bias) s += p.bias[(h * p.Tq + i0 + r) * p.Tk + j0 + j];
  return s;
}

// ---------------------------------------------------------------- forward

struct AttnForwardTc {
  AttnParamsT<hd::bf16> p;
  struct Sh {
    hd::bf16 *q, *k, *v, *pm;
    float *s, *o, *m, *l, *a;
    KFAC_HD Sh(unsigned char* base, int64_t D, int64_t* bytes = nullptr) {
      AttnCarve c{base};
      const int64_t lh = attn_tc_ldh(D);
      q = c.take<hd::bf16>(kAttnBQ * lh), k = c.take<hd::bf16>(kAttnBK * lh), v = c.take<hd::bf16>(kAttnBK * lh);
      pm = c.take<hd::bf16>(kAttnBQ * kAttnTcLdP);
      s = c.take<float>(kAttnBQ * kAttnTcLdS), o = c.take<float>(kAttnBQ * attn_tc_ldo(D));
      m = c.take<float>(kAttnBQ), l = c.take<float>(kAttnBQ), a = c.take<float>(kAttnBQ);
      if (bytes) *bytes = c.off;
    }
  };
  static int64_t shared_bytes(int64_t D) { return attn_tc_bytes<Sh>(D); }
  // 0: init; 1 + 4·t + s: key tile t, step s (load, S = Q Kᵀ, softmax, O += P V); last: write out.
  KFAC_HD int phases(int) const { return int(2 + 4 * attn_key_tiles(p)); }
  KFAC_HD void phase(int ph, const hd::Idx& i, unsigned char* shared) const {
    const AttnQTile tl(p, i.block);
    const int64_t D = p.D;
    const int lh = attn_tc_ldh(D), lo = attn_tc_ldo(D);
    const Sh sh(shared, D);
    if (ph == 0) {
      attn_load(sh.q, lh, p.q + attn_qrow(p, tl.b, tl.i0, tl.h), p.H * D, tl.m, kAttnBQ, D, i);
      for (int64_t e = i.thread; e < kAttnBQ * D; e += i.threads) sh.o[(e / D) * lo + e % D] = 0.f;
      for (int r = i.thread; r < kAttnBQ; r += i.threads) sh.m[r] = -attn_inf(), sh.l[r] = 0.f;
      return;
    }
    if (ph == phases(i.threads) - 1) return attn_forward_finish(p, tl, sh.o, lo, sh.m, sh.l, i);
    const int64_t j0 = int64_t((ph - 1) / 4) * kAttnBK;
    if (j0 >= tl.nk) return;  // a causal tile that needs fewer keys
    switch ((ph - 1) % 4) {
      case 0: attn_load_kv(p, tl.b, tl.g, j0, attn_min(kAttnBK, tl.nk - j0), sh.k, sh.v, lh, i); break;
      case 1: attn_tc_gemm<false, true>(sh.s, kAttnTcLdS, sh.q, lh, sh.k, lh, kAttnBQ, kAttnBK, int(D), false, i); break;
      case 2:  // online softmax, one thread per row; O's row rescaled by alpha here
        for (int r = i.thread; r < kAttnBQ; r += i.threads) {
          float* row = sh.s + r * kAttnTcLdS;
          for (int j = 0; j < kAttnBK; ++j) row[j] = attn_tc_score(p, tl.b, tl.h, tl.i0, tl.m, j0, r, j, row[j]);
          // P rounded to bf16 for the tile product; alpha 1 while nothing is visible (O is 0)
          const float alpha = attn_online_row(p, tl, r, j0, row, sh.pm + r * kAttnTcLdP, sh.m, sh.l);
          for (int64_t c = 0; c < D; ++c) sh.o[r * lo + c] *= alpha;
        }
        break;
      default: attn_tc_gemm<false, false>(sh.o, lo, sh.pm, kAttnTcLdP, sh.v, lh, kAttnBQ, int(D), kAttnBK, true, i);
    }
  }
};

// ---------------------------------------------------------------- backward: dQ pass

struct AttnDqTc {
  AttnParamsT<hd::bf16> p;
  struct Sh {
    hd::bf16 *q, *g, *k, *v, *ds;
    float *s, *dp, *dq, *lse, *dr;
    KFAC_HD Sh(unsigned char* base, int64_t D, int64_t* bytes = nullptr) {
      AttnCarve c{base};
      const int64_t lh = attn_tc_ldh(D);
      q = c.take<hd::bf16>(kAttnBQ * lh), g = c.take<hd::bf16>(kAttnBQ * lh);
      k = c.take<hd::bf16>(kAttnBK * lh), v = c.take<hd::bf16>(kAttnBK * lh);
      ds = c.take<hd::bf16>(kAttnBQ * kAttnTcLdP);
      s = c.take<float>(kAttnBQ * kAttnTcLdS), dp = c.take<float>(kAttnBQ * kAttnTcLdS);
      dq = c.take<float>(kAttnBQ * attn_tc_ldo(D));
      lse = c.take<float>(kAttnBQ), dr = c.take<float>(kAttnBQ);
      if (bytes) *bytes = c.off;
    }
  };
  static int64_t shared_bytes(int64_t D) { return attn_tc_bytes<Sh>(D); }
  // 0: init; without `out`, 4 phases per key tile summing D; 4 per key tile (load, S and dP,
  // dS, dQ += dS K); last: write dq and D.
  KFAC_HD int pre_tiles() const { return p.out ? 0 : int(attn_key_tiles(p)); }
  KFAC_HD int phases(int) const { return int(2 + 4 * pre_tiles() + 4 * attn_key_tiles(p)); }
  KFAC_HD void phase(int ph, const hd::Idx& i, unsigned char* shared) const {
    const AttnQTile tl(p, i.block);
    const int64_t D = p.D;
    const int lh = attn_tc_ldh(D), lo = attn_tc_ldo(D);
    const Sh sh(shared, D);
    if (ph == 0) {
      attn_load(sh.q, lh, p.q + attn_qrow(p, tl.b, tl.i0, tl.h), p.H * D, tl.m, kAttnBQ, D, i);
      attn_load(sh.g, lh, p.dout + attn_qrow(p, tl.b, tl.i0, tl.h), p.H * D, tl.m, kAttnBQ, D, i);
      for (int64_t e = i.thread; e < kAttnBQ * D; e += i.threads) sh.dq[(e / D) * lo + e % D] = 0.f;
      attn_dq_rows(p, tl, sh.lse, sh.dr, i);
      return;
    }
    if (ph == phases(i.threads) - 1) return attn_dq_finish(p, tl, sh.dq, lo, sh.dr, i);
    const AttnDqStep at(ph, pre_tiles());
    const bool pre = at.pre;
    const int64_t j0 = at.j0;
    if (j0 >= tl.nk) return;
    switch (at.q % 4) {
      case 0: attn_load_kv(p, tl.b, tl.g, j0, attn_min(kAttnBK, tl.nk - j0), sh.k, sh.v, lh, i); break;
      case 1:
        attn_tc_gemm<false, true>(sh.s, kAttnTcLdS, sh.q, lh, sh.k, lh, kAttnBQ, kAttnBK, int(D), false, i);
        attn_tc_gemm<false, true>(sh.dp, kAttnTcLdS, sh.g, lh, sh.v, lh, kAttnBQ, kAttnBK, int(D), false, i);
        break;
      case 2:
        if (pre) {  // D += Σ_j P·M·dP, one thread per row
          for (int r = i.thread; r < kAttnBQ; r += i.threads)
            for (int j = 0; j < kAttnBK; ++j) {
              const float s = attn_tc_score(p, tl.b, tl.h, tl.i0, tl.m, j0, r, j, sh.s[r * kAttnTcLdS + j]);
              if (s == -attn_inf() || sh.lse[r] == attn_inf()) continue;
              const float pr = hd::expf_(s - sh.lse[r]);
              if (pr != 0.f) sh.dr[r] += pr * attn_keep(p, tl.b, tl.h, tl.i0 + r, j0 + j) * sh.dp[r * kAttnTcLdS + j];
            }
          break;
        }
        for (int e = i.thread; e < kAttnBQ * kAttnBK; e += i.threads) {  // dS = P ∘ (dP·M − D)
          const int r = e / kAttnBK, j = e % kAttnBK;
          const float s = attn_tc_score(p, tl.b, tl.h, tl.i0, tl.m, j0, r, j, sh.s[r * kAttnTcLdS + j]);
          const float pr = (s == -attn_inf() || sh.lse[r] == attn_inf()) ? 0.f : hd::expf_(s - sh.lse[r]);
          const float mk = pr == 0.f ? 0.f : attn_keep(p, tl.b, tl.h, tl.i0 + r, j0 + j);
          const float ds = pr * (sh.dp[r * kAttnTcLdS + j] * mk - sh.dr[r]);
          hd::st(sh.ds, r * kAttnTcLdP + j, ds);
          if (p.dbias && tl.i0 + r < p.Tq && j0 + j < p.Tk)
            p.dbias[((tl.b * p.H + tl.h) * p.Tq + tl.i0 + r) * p.Tk + j0 + j] = ds;
        }
        break;
      default:
        if (!pre) attn_tc_gemm<false, false>(sh.dq, lo, sh.ds, kAttnTcLdP, sh.k, lh, kAttnBQ, int(D), kAttnBK, true, i);
    }
  }
};

// ---------------------------------------------------------------- backward: dK/dV pass

struct AttnDkvTc {
  AttnParamsT<hd::bf16> p;
  struct Sh {
    hd::bf16 *k, *v, *q, *g, *pm, *ds;
    float *dk, *dv, *s, *dp, *lse, *dr;
    KFAC_HD Sh(unsigned char* base, int64_t D, int64_t* bytes = nullptr) {
      AttnCarve c{base};
      const int64_t lh = attn_tc_ldh(D), lo = attn_tc_ldo(D);
      k = c.take<hd::bf16>(kAttnBK * lh), v = c.take<hd::bf16>(kAttnBK * lh);
      q = c.take<hd::bf16>(kAttnBQ * lh), g = c.take<hd::bf16>(kAttnBQ * lh);
      pm = c.take<hd::bf16>(kAttnBQ * kAttnTcLdP), ds = c.take<hd::bf16>(kAttnBQ * kAttnTcLdP);
      dk = c.take<float>(kAttnBK * lo), dv = c.take<float>(kAttnBK * lo);
      s = c.take<float>(kAttnBQ * kAttnTcLdS), dp = c.take<float>(kAttnBQ * kAttnTcLdS);
      lse = c.take<float>(kAttnBQ), dr = c.take<float>(kAttnBQ);
      if (bytes) *bytes = c.off;
    }
  };
  static int64_t shared_bytes(int64_t D) { return attn_tc_bytes<Sh>(D); }
  // 0: init; 4 per (query head of the group, query tile) (load, S and dP, P·M and dS,
  // accumulate); last: write.
  KFAC_HD int phases(int) const { return int(2 + 4 * (p.H / p.Hkv) * attn_query_tiles(p)); }
  KFAC_HD void phase(int ph, const hd::Idx& i, unsigned char* shared) const {
    const int64_t D = p.D, nct = attn_cap_tiles(p), nqt = attn_query_tiles(p);
    const int lh = attn_tc_ldh(D), lo = attn_tc_ldo(D);
    const int64_t g = (i.block / nct) % p.Hkv, b = i.block / (nct * p.Hkv), j0 = (i.block % nct) * kAttnBK;
    const int64_t kb = attn_max(0, attn_min(kAttnBK, p.Tk - j0)), rows = attn_min(kAttnBK, p.Tcap - j0);
    const Sh sh(shared, D);
    if (ph == 0) {
      attn_load_kv(p, b, g, j0, kb, sh.k, sh.v, lh, i);
      for (int64_t e = i.thread; e < kAttnBK * D; e += i.threads) sh.dk[(e / D) * lo + e % D] = 0.f, sh.dv[(e / D) * lo + e % D] = 0.f;
      return;
    }
    if (ph == phases(i.threads) - 1) return attn_dkv_finish(p, b, g, j0, kb, rows, sh.dk, sh.dv, lo, i);
    const int64_t u = (ph - 1) / 4, h = g * (p.H / p.Hkv) + u / nqt, i0 = (u % nqt) * kAttnBQ;
    const int64_t m = attn_min(kAttnBQ, p.Tq - i0);
    if (kb == 0 || (p.causal && i0 + m - 1 + (p.Tk - p.Tq) < j0)) return;  // as the CUDA-core body
    switch ((ph - 1) % 4) {
      case 0:
        attn_load(sh.q, lh, p.q + attn_qrow(p, b, i0, h), p.H * D, m, kAttnBQ, D, i);
        attn_load(sh.g, lh, p.dout + attn_qrow(p, b, i0, h), p.H * D, m, kAttnBQ, D, i);
        attn_dkv_rows(p, b, h, i0, m, sh.lse, sh.dr, i);
        break;
      case 1:
        attn_tc_gemm<false, true>(sh.s, kAttnTcLdS, sh.q, lh, sh.k, lh, kAttnBQ, kAttnBK, int(D), false, i);
        attn_tc_gemm<false, true>(sh.dp, kAttnTcLdS, sh.g, lh, sh.v, lh, kAttnBQ, kAttnBK, int(D), false, i);
        break;
      case 2:
        for (int e = i.thread; e < kAttnBQ * kAttnBK; e += i.threads) {  // P·M and dS = P ∘ (dP·M − D)
          const int r = e / kAttnBK, j = e % kAttnBK;
          const float s = attn_tc_score(p, b, h, i0, m, j0, r, j, sh.s[r * kAttnTcLdS + j]);
          const float pr = (s == -attn_inf() || sh.lse[r] == attn_inf()) ? 0.f : hd::expf_(s - sh.lse[r]);
          const float mk = pr == 0.f ? 0.f : attn_keep(p, b, h, i0 + r, j0 + j);
          hd::st(sh.pm, r * kAttnTcLdP + j, pr * mk);
          hd::st(sh.ds, r * kAttnTcLdP + j, pr * (sh.dp[r * kAttnTcLdS + j] * mk - sh.dr[r]));
        }
        break;
      default:  // dV += (P·M)ᵀ dO ; dK += dSᵀ Q
        attn_tc_gemm<true, false>(sh.dv, lo, sh.pm, kAttnTcLdP, sh.g, lh, kAttnBK, int(D), kAttnBQ, true, i);
        attn_tc_gemm<true, false>(sh.dk, lo, sh.ds, kAttnTcLdP, sh.q, lh, kAttnBK, int(D), kAttnBQ, true, i);
    }
  }
};

}  // namespace kfac::nnk
