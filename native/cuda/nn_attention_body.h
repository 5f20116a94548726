// Attention forward and backward in the FlashAttention-2 manner on CUDA cores: block bodies
// (phases between barriers, hd.h), launched by the adapters of nn_attention_launch.h over the
// executor (native/cuda/exec.cuh on the device, native/emu/exec.h on the host); the reference of
// the tensor-core bodies (nn_attention_tc_body.h). Head dimension up to kAttnMaxHeadDim. q, k, v, out,
// dout, dq, dk, dv are stored as T (float, or bf16 on the cuda device): tiles are widened to
// float32 as they are loaded into shared memory and every sum is float32; results are rounded
// once when stored. lse, the mask, the bias and dbias are float32.
//
// Tiles of kAttnBQ = 32 queries × kAttnBK = 32 keys, kAttnThreads = 128 threads per block.
//   forward   block (b, h, query tile): Q in shared memory; per key tile: load K, V; S = scale·Q Kᵀ
//             (−inf where masked); online softmax, one thread per row (running max m and sum l in
//             shared memory, the tile's probabilities dropped in place, alpha = exp(m_old − m_new));
//             O ← alpha·O + P V. Last phase: out = O / l, lse = m + log l.
//   backward  dQ pass, block (b, h, query tile): D = rowsum(dO ∘ O) (or, without the forward's
//             output, Σ_j P·M·dP over a first sweep of the keys); per key tile P = exp(S − lse),
//             dS = P ∘ (dP·M − D), dQ += dS K; D is saved for the second pass.
//             dK/dV pass, block (b, kv head, key tile of Tcap): over the group's heads and the
//             query tiles that can see the tile, in order: dV += (P·M)ᵀ dO, dK += dSᵀ Q; rows ≥ Tk
//             get zeros. Every output element is written by one block in a fixed order: no
//             atomics, deterministic.
// The phase count of a launch is the same for every block (hd.h): a block whose causal range
// needs fewer key (or query) tiles than the longest one leaves the extra phases empty.
// A score bias [H, Tq, Tk] (T5) is added to each score as it is formed; the dQ pass, which owns
// every (b, h, i) row, writes that row's dbias [B, H, Tq, Tk] = dS (0 for keys it never sees).
// Shapes, masks, GQA, the capacity Tcap, the causal offset Tk − Tq and the dropout counters are
// those of native/cpu/nn_attention.h; the dropout mask is DropoutMask's splitmix64 stream.
#pragma once
#include <string>

#include "../core/dispatch.h"
#include "../core/error.h"
#include "../cpu/nn_dropout.h"
#include "hd.h"
#include "nn_storage.h"

namespace kfac::nnk {

constexpr int kAttnBQ = 32;
constexpr int kAttnBK = 32;
constexpr int kAttnThreads = 128;
constexpr int64_t kAttnMaxHeadDim = 256;

// Geometry, float32 side tensors and dropout; AttnParamsT adds the activations stored as T.
struct AttnParams {
  const float* mask;              // [B, Tcap] or null
  float* lse;                     // forward output
  float* drow;                    // backward: D of every query row [B, H, Tq] (scratch)
  const float* bias;              // [H, Tq, Tk] or null
  float* dbias;                   // backward: [B, H, Tq, Tk] or null
  int64_t B, Tq, Tk, H, Hkv, D, Tcap;
  int causal;
  float scale;
  int dropout;  // keep iff (mix(key + index) >> 40) ≥ threshold, kept values × drop_scale
  uint64_t drop_key, drop_threshold;
  float drop_scale;
};

template <class T>
struct AttnParamsT : AttnParams {
  const T *q = nullptr, *k = nullptr, *v = nullptr;
  const T* out = nullptr;  // backward: the forward's output, or null
  const T* dout = nullptr;
  T* o = nullptr;                               // forward output
  T *dq = nullptr, *dk = nullptr, *dv = nullptr;  // backward outputs
};

KFAC_HD float attn_inf() { return __builtin_huge_valf(); }
KFAC_HD float attn_logf(float x) { return ::logf(x); }
KFAC_HD int64_t attn_min(int64_t a, int64_t b) { return a < b ? a : b; }
KFAC_HD int64_t attn_max(int64_t a, int64_t b) { return a > b ? a : b; }

// splitmix64 as DropoutMask::mix: multiplier of probability (b, h, i, j), element
// ((b·H + h)·Tq + i)·Tk + j of a [B, H, Tq, Tk] dropout, 0 or 1/(1 − p).
KFAC_HD uint64_t attn_mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
KFAC_HD float attn_keep(const AttnParams& p, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (!p.dropout) return 1.f;
  const uint64_t idx = uint64_t(((b * p.H + h) * p.Tq + i) * p.Tk + j);
  return (attn_mix(p.drop_key + idx) >> 40) >= p.drop_threshold ? p.drop_scale : 0.f;
}
// Last key (inclusive) query i sees before the padding mask; whether it sees key j.
KFAC_HD int64_t attn_last_key(const AttnParams& p, int64_t i) {
  return p.causal ? attn_min(p.Tk - 1, i + (p.Tk - p.Tq)) : p.Tk - 1;
}
KFAC_HD bool attn_sees(const AttnParams& p, int64_t b, int64_t i, int64_t j) {
  return j <= attn_last_key(p, i) && (!p.mask || p.mask[b * p.Tcap + j] != 0.f);
}
KFAC_HD int64_t attn_query_tiles(const AttnParams& p) { return (p.Tq + kAttnBQ - 1) / kAttnBQ; }
KFAC_HD int64_t attn_key_tiles(const AttnParams& p) { return (p.Tk + kAttnBK - 1) / kAttnBK; }
KFAC_HD int64_t attn_cap_tiles(const AttnParams& p) { return (p.Tcap + kAttnBK - 1) / kAttnBK; }
// Keys [0, n) the query tile [i0, i0 + m) needs.
KFAC_HD int64_t attn_tile_keys(const AttnParams& p, int64_t i0, int64_t m) {
  return attn_max(0, attn_min(p.Tk, attn_last_key(p, i0 + m - 1) + 1));
}
// Element offsets of row (b, t, head) in q-like [B, Tq, H, D] and k-like [B, Tcap, Hkv, D] tensors.
KFAC_HD int64_t attn_qrow(const AttnParams& p, int64_t b, int64_t t, int64_t h) { return ((b * p.Tq + t) * p.H + h) * p.D; }
KFAC_HD int64_t attn_krow(const AttnParams& p, int64_t b, int64_t t, int64_t g) { return ((b * p.Tcap + t) * p.Hkv + g) * p.D; }
// Key and value tiles keep rows of D + 1 floats: the score phase reads K[j][c] with j varying
// across a warp, and an odd row stride spreads those reads over the shared-memory banks.
KFAC_HD int64_t attn_kv_ld(int64_t D) { return D + 1; }

// sX[r·sld + c] ← src[r·ld + c] for r < n, 0 for n ≤ r < rows: thread i's share of a phase.
template <class T>
KFAC_HD void attn_load(float* sX, int64_t sld, const T* src, int64_t ld, int64_t n, int rows, int64_t D,
                       const hd::Idx& i) {
  for (int64_t e = i.thread; e < rows * D; e += i.threads) {
    const int64_t r = e / D, c = e % D;
    sX[r * sld + c] = r < n ? hd::ld(src, r * ld + c) : 0.f;
  }
}

// sX ← bf16 rows as they are (the tensor-core bodies' operands): the bf16 overload of attn_load.
KFAC_HD void attn_load(hd::bf16* sX, int64_t sld, const hd::bf16* src, int64_t ld, int64_t n, int rows, int64_t D,
                       const hd::Idx& i) {
  for (int64_t e = i.thread; e < rows * D; e += i.threads) {
    const int64_t r = e / D, c = e % D;
    sX[r * sld + c].bits = r < n ? src[r * ld + c].bits : uint16_t(0);
  }
}

// The key tile from key j0 of batch b, KV head g: its kb rows of K and V into sK, sV (rows of sld,
// kAttnBK rows, zeros after kb). Every pass of both bodies loads its keys through here.
template <class S, class T>
KFAC_HD void attn_load_kv(const AttnParamsT<T>& p, int64_t b, int64_t g, int64_t j0, int64_t kb, S* sK, S* sV,
                          int64_t sld, const hd::Idx& i) {
  attn_load(sK, sld, p.k + attn_krow(p, b, j0, g), p.Hkv * p.D, kb, kAttnBK, p.D, i);
  attn_load(sV, sld, p.v + attn_krow(p, b, j0, g), p.Hkv * p.D, kb, kAttnBK, p.D, i);
}

// S[r][j] = scale·⟨A_r, K_j⟩ where query i0 + r sees key j0 + j, else −inf; with sP also
// dP[r][j] = ⟨G_r, V_j⟩ (0 where not seen).
KFAC_HD void attn_scores(const AttnParams& p, int64_t b, int64_t h, int64_t i0, int64_t m, int64_t j0, const float* sA,
                         const float* sK, float* sS, const float* sG, const float* sV, float* sP, const hd::Idx& i) {
  const int64_t D = p.D, L = attn_kv_ld(D);
  for (int e = i.thread; e < kAttnBQ * kAttnBK; e += i.threads) {
    const int r = e / kAttnBK, j = e % kAttnBK;
    float s = -attn_inf(), dp = 0.f;
    if (r < m && j0 + j < p.Tk && attn_sees(p, b, i0 + r, j0 + j)) {
      float acc = 0.f;
      for (int64_t c = 0; c < D; ++c) acc += sA[r * D + c] * sK[j * L + c];
      s = acc * p.scale;
      if (p.bias) s += p.bias[(h * p.Tq + i0 + r) * p.Tk + j0 + j];
      if (sP) {
        float g = 0.f;
        for (int64_t c = 0; c < D; ++c) g += sG[r * D + c] * sV[j * L + c];
        dp = g;
      }
    }
    sS[e] = s;
    if (sP) sP[e] = dp;
  }
}

// P = exp(S − lse) (0 where S = −inf or the row saw nothing), then sP ← dS = P ∘ (dP·M − D) and
// sS ← P·M (the probabilities the forward used). With `dbias`, dS is also its element of dbias.
KFAC_HD void attn_softmax_grad(const AttnParams& p, int64_t b, int64_t h, int64_t i0, int64_t j0, const float* sLse,
                               const float* sDr, float* sS, float* sP, bool dbias, const hd::Idx& i) {
  for (int e = i.thread; e < kAttnBQ * kAttnBK; e += i.threads) {
    const int r = e / kAttnBK, j = e % kAttnBK;
    const float s = sS[e];
    const float pr = (s == -attn_inf() || sLse[r] == attn_inf()) ? 0.f : hd::expf_(s - sLse[r]);
    const float mk = pr == 0.f ? 0.f : attn_keep(p, b, h, i0 + r, j0 + j);
    sP[e] = pr * (sP[e] * mk - sDr[r]);
    sS[e] = pr * mk;
    if (dbias && i0 + r < p.Tq && j0 + j < p.Tk) p.dbias[((b * p.H + h) * p.Tq + i0 + r) * p.Tk + j0 + j] = sP[e];
  }
}

// A query tile block's coordinates: batch, head, kv head, first row, rows, keys needed.
struct AttnQTile {
  int64_t b, h, g, i0, m, nk;
  KFAC_HD AttnQTile(const AttnParams& p, int64_t blk) {
    const int64_t nqt = attn_query_tiles(p);
    h = (blk / nqt) % p.H;
    b = blk / (nqt * p.H);
    g = h / (p.H / p.Hkv);
    i0 = (blk % nqt) * kAttnBQ;
    m = attn_min(kAttnBQ, p.Tq - i0);
    nk = attn_tile_keys(p, i0, m);
  }
};


// ---------------------------------------------------------------- phases shared by both bodies
// (these bodies and the tensor-core ones of nn_attention_tc_body.h): reads and writes of global
// memory around the tiles; `ld` is the row stride of the caller's shared accumulator.

// Forward, last phase: out = O / l (0 for a row that saw nothing), lse = m + log l (+inf then).
template <class T>
KFAC_HD void attn_forward_finish(const AttnParamsT<T>& p, const AttnQTile& tl, const float* O, int64_t ld,
                                 const float* m, const float* l, const hd::Idx& i) {
  const int64_t D = p.D;
  for (int64_t e = i.thread; e < tl.m * D; e += i.threads) {
    const int64_t r = e / D, c = e % D;
    hd::st(p.o, attn_qrow(p, tl.b, tl.i0 + r, tl.h) + c, m[r] == -attn_inf() ? 0.f : O[r * ld + c] / l[r]);
  }
  for (int r = i.thread; r < tl.m; r += i.threads)
    p.lse[(tl.b * p.H + tl.h) * p.Tq + tl.i0 + r] = m[r] == -attn_inf() ? attn_inf() : m[r] + attn_logf(l[r]);
}

// Forward: one row of the online softmax over a key tile (one thread per row). s: the tile's
// scores (−inf where not seen); the row's running max m and sum l are updated and P is written
// (hd::st; in place over s for the CUDA-core body) as exp(s − m_new) times the dropout multiplier.
// Returns alpha = exp(m_old − m_new), the factor of the row's accumulated O (1 while the row has
// seen nothing, P = 0 then).
template <class P>
KFAC_HD float attn_online_row(const AttnParams& p, const AttnQTile& tl, int r, int64_t j0, const float* s, P* prow,
                              float* m, float* l) {
  float bm = -attn_inf();
  for (int j = 0; j < kAttnBK; ++j) bm = s[j] > bm ? s[j] : bm;
  const float mold = m[r], mnew = mold > bm ? mold : bm;
  if (mnew == -attn_inf()) {  // nothing visible so far
    for (int j = 0; j < kAttnBK; ++j) hd::st(prow, j, 0.f);
    return 1.f;
  }
  const float alpha = mold == -attn_inf() ? 0.f : hd::expf_(mold - mnew);
  float sum = 0.f;
  for (int j = 0; j < kAttnBK; ++j) {
    const float e = s[j] == -attn_inf() ? 0.f : hd::expf_(s[j] - mnew);
    sum += e;
    hd::st(prow, j, e == 0.f ? 0.f : e * attn_keep(p, tl.b, tl.h, tl.i0 + r, j0 + j));
  }
  l[r] = l[r] * alpha + sum;
  m[r] = mnew;
  return alpha;
}

// dQ pass, first phase's rows: lse of each row (+inf past the tile) and D = rowsum(dO ∘ O) from
// global memory when the forward's output is given (else 0: the pre-pass sums it).
template <class T>
KFAC_HD void attn_dq_rows(const AttnParamsT<T>& p, const AttnQTile& tl, float* lse, float* dr, const hd::Idx& i) {
  for (int r = i.thread; r < kAttnBQ; r += i.threads) {
    lse[r] = r < tl.m ? p.lse[(tl.b * p.H + tl.h) * p.Tq + tl.i0 + r] : attn_inf();
    float d = 0.f;
    if (p.out && r < tl.m) {
      const int64_t o = attn_qrow(p, tl.b, tl.i0 + r, tl.h);
      for (int64_t c = 0; c < p.D; ++c) d += hd::ld(p.dout, o + c) * hd::ld(p.out, o + c);
    }
    dr[r] = d;
  }
}

// dQ pass, a key-tile phase ph (after the first): whether it belongs to the pre-pass that sums D
// (without the forward's output), its place q in the 4-phase tile cycles, the tile's first key.
struct AttnDqStep {
  bool pre;
  int q;
  int64_t j0;
  KFAC_HD AttnDqStep(int ph, int pre_tiles)
      : pre(ph - 1 < 4 * pre_tiles), q(pre ? ph - 1 : ph - 1 - 4 * pre_tiles), j0(int64_t(q / 4) * kAttnBK) {}
};

// dQ pass, last phase: dq = scale·acc, the rows' D for the dK/dV pass, and zeros of dbias for the
// keys past the tile's last (never seen: their bias gets no gradient).
template <class T>
KFAC_HD void attn_dq_finish(const AttnParamsT<T>& p, const AttnQTile& tl, const float* acc, int64_t ld, const float* dr,
                            const hd::Idx& i) {
  const int64_t D = p.D;
  for (int64_t e = i.thread; e < tl.m * D; e += i.threads) {
    const int64_t r = e / D, c = e % D;
    hd::st(p.dq, attn_qrow(p, tl.b, tl.i0 + r, tl.h) + c, acc[r * ld + c] * p.scale);
  }
  for (int r = i.thread; r < tl.m; r += i.threads) p.drow[(tl.b * p.H + tl.h) * p.Tq + tl.i0 + r] = dr[r];
  if (p.dbias)
    for (int64_t e = i.thread; e < tl.m * (p.Tk - tl.nk); e += i.threads) {
      const int64_t r = e / (p.Tk - tl.nk), j = tl.nk + e % (p.Tk - tl.nk);
      p.dbias[((tl.b * p.H + tl.h) * p.Tq + tl.i0 + r) * p.Tk + j] = 0.f;
    }
}

// dK/dV pass, the query tile's rows: lse (+inf past the tile) and D saved by the dQ pass.
KFAC_HD void attn_dkv_rows(const AttnParams& p, int64_t b, int64_t h, int64_t i0, int64_t m, float* lse, float* dr,
                           const hd::Idx& i) {
  for (int r = i.thread; r < kAttnBQ; r += i.threads) {
    lse[r] = r < m ? p.lse[(b * p.H + h) * p.Tq + i0 + r] : attn_inf();
    dr[r] = r < m ? p.drow[(b * p.H + h) * p.Tq + i0 + r] : 0.f;
  }
}

// dK/dV pass, last phase: dk = scale·dK, dv = dV for the tile's keys below Tk, zeros up to Tcap.
template <class T>
KFAC_HD void attn_dkv_finish(const AttnParamsT<T>& p, int64_t b, int64_t g, int64_t j0, int64_t kb, int64_t rows,
                             const float* dK, const float* dV, int64_t ld, const hd::Idx& i) {
  const int64_t D = p.D;
  for (int64_t e = i.thread; e < rows * D; e += i.threads) {
    const int64_t j = e / D, c = e % D;
    hd::st(p.dk, attn_krow(p, b, j0 + j, g) + c, j < kb ? dK[j * ld + c] * p.scale : 0.f);
    hd::st(p.dv, attn_krow(p, b, j0 + j, g) + c, j < kb ? dV[j * ld + c] : 0.f);
  }
}

// ---------------------------------------------------------------- forward

template <class T>
struct AttnForward {
  AttnParamsT<T> p;
  // Shared: Q [BQ, D], K and V [BK, D + 1], S [BQ, BK], O [BQ, D], m, l, alpha [BQ].
  static int64_t shared_bytes(int64_t D) {
    return int64_t(sizeof(float)) * (2 * kAttnBQ * D + 2 * kAttnBK * attn_kv_ld(D) + kAttnBQ * kAttnBK + 3 * kAttnBQ);
  }
  // 0: init; 1 + 4·t + s: key tile t, step s (load, scores, softmax, P V); last: write out.
  KFAC_HD int phases(int) const { return int(2 + 4 * attn_key_tiles(p)); }
  KFAC_HD void phase(int ph, const hd::Idx& i, unsigned char* shared) const {
    const AttnQTile tl(p, i.block);
    const int64_t D = p.D, L = attn_kv_ld(D);
    float* sQ = reinterpret_cast<float*>(shared);
    float *sK = sQ + kAttnBQ * D, *sV = sK + kAttnBK * L, *sS = sV + kAttnBK * L, *sO = sS + kAttnBQ * kAttnBK;
    float *sM = sO + kAttnBQ * D, *sL = sM + kAttnBQ, *sA = sL + kAttnBQ;
    if (ph == 0) {
      attn_load(sQ, D, p.q + attn_qrow(p, tl.b, tl.i0, tl.h), p.H * D, tl.m, kAttnBQ, D, i);
      for (int64_t e = i.thread; e < kAttnBQ * D; e += i.threads) sO[e] = 0.f;
      for (int r = i.thread; r < kAttnBQ; r += i.threads) sM[r] = -attn_inf(), sL[r] = 0.f;
      return;
    }
    if (ph == phases(i.threads) - 1) return attn_forward_finish(p, tl, sO, D, sM, sL, i);
    const int64_t j0 = int64_t((ph - 1) / 4) * kAttnBK;
    if (j0 >= tl.nk) return;  // a causal tile that needs fewer keys
    switch ((ph - 1) % 4) {
      case 0: attn_load_kv(p, tl.b, tl.g, j0, attn_min(kAttnBK, tl.nk - j0), sK, sV, L, i); break;
      case 1: attn_scores(p, tl.b, tl.h, tl.i0, tl.m, j0, sQ, sK, sS, nullptr, nullptr, nullptr, i); break;
      case 2:  // online softmax, one thread per row
        for (int r = i.thread; r < kAttnBQ; r += i.threads) {
          float* row = sS + r * kAttnBK;
          sA[r] = attn_online_row(p, tl, r, j0, row, row, sM, sL);  // P in place over S
        }
        break;
      default:  // O ← alpha·O + P V
        for (int64_t e = i.thread; e < kAttnBQ * D; e += i.threads) {
          const int64_t r = e / D, c = e % D;
          float acc = sO[e] * sA[r];
          for (int j = 0; j < kAttnBK; ++j) acc += sS[r * kAttnBK + j] * sV[j * L + c];
          sO[e] = acc;
        }
    }
  }
};

// ---------------------------------------------------------------- backward: dQ pass

template <class T>
struct AttnDq {
  AttnParamsT<T> p;
  // Shared: Q, dO, dQ [BQ, D], K and V [BK, D + 1], S and dP [BQ, BK], lse and D [BQ].
  static int64_t shared_bytes(int64_t D) {
    return int64_t(sizeof(float)) * (3 * kAttnBQ * D + 2 * kAttnBK * attn_kv_ld(D) + 2 * kAttnBQ * kAttnBK + 2 * kAttnBQ);
  }
  // 0: init; without `out`, 4 phases per key tile summing D; 4 per key tile (load, scores,
  // dS, dQ += dS K); last: write dq and D.
  KFAC_HD int pre_tiles() const { return p.out ? 0 : int(attn_key_tiles(p)); }
  KFAC_HD int phases(int) const { return int(2 + 4 * pre_tiles() + 4 * attn_key_tiles(p)); }
  KFAC_HD void phase(int ph, const hd::Idx& i, unsigned char* shared) const {
    const AttnQTile tl(p, i.block);
    const int64_t D = p.D, L = attn_kv_ld(D);
    float* sQ = reinterpret_cast<float*>(shared);
    float *sG = sQ + kAttnBQ * D, *sdQ = sG + kAttnBQ * D, *sK = sdQ + kAttnBQ * D, *sV = sK + kAttnBK * L;
    float *sS = sV + kAttnBK * L, *sP = sS + kAttnBQ * kAttnBK, *sLse = sP + kAttnBQ * kAttnBK, *sDr = sLse + kAttnBQ;
    if (ph == 0) {
      attn_load(sQ, D, p.q + attn_qrow(p, tl.b, tl.i0, tl.h), p.H * D, tl.m, kAttnBQ, D, i);
      attn_load(sG, D, p.dout + attn_qrow(p, tl.b, tl.i0, tl.h), p.H * D, tl.m, kAttnBQ, D, i);
      for (int64_t e = i.thread; e < kAttnBQ * D; e += i.threads) sdQ[e] = 0.f;
      attn_dq_rows(p, tl, sLse, sDr, i);  // from global memory: sG is being filled in this phase
      return;
    }
    if (ph == phases(i.threads) - 1) return attn_dq_finish(p, tl, sdQ, D, sDr, i);
    const AttnDqStep at(ph, pre_tiles());
    const bool pre = at.pre;
    const int64_t j0 = at.j0;
    if (j0 >= tl.nk) return;
    switch (at.q % 4) {
      case 0: attn_load_kv(p, tl.b, tl.g, j0, attn_min(kAttnBK, tl.nk - j0), sK, sV, L, i); break;
      case 1: attn_scores(p, tl.b, tl.h, tl.i0, tl.m, j0, sQ, sK, sS, sG, sV, sP, i); break;
      case 2:
        if (!pre) {
          attn_softmax_grad(p, tl.b, tl.h, tl.i0, j0, sLse, sDr, sS, sP, p.dbias != nullptr, i);
          break;
        }
        for (int e = i.thread; e < kAttnBQ * kAttnBK; e += i.threads) {  // P·M·dP
          const int r = e / kAttnBK, j = e % kAttnBK;
          const float pr = (sS[e] == -attn_inf() || sLse[r] == attn_inf()) ? 0.f : hd::expf_(sS[e] - sLse[r]);
          sS[e] = pr == 0.f ? 0.f : pr * attn_keep(p, tl.b, tl.h, tl.i0 + r, j0 + j) * sP[e];
        }
        break;
      default:
        if (pre) {  // D += Σ_j P·M·dP, one thread per row
          for (int r = i.thread; r < kAttnBQ; r += i.threads)
            for (int j = 0; j < kAttnBK; ++j) sDr[r] += sS[r * kAttnBK + j];
          break;
        }
        for (int64_t e = i.thread; e < kAttnBQ * D; e += i.threads) {  // dQ += dS K
          const int64_t r = e / D, c = e % D;
          float acc = sdQ[e];
          for (int j = 0; j < kAttnBK; ++j) acc += sP[r * kAttnBK + j] * sK[j * L + c];
          sdQ[e] = acc;
        }
    }
  }
};

// ---------------------------------------------------------------- backward: dK/dV pass

template <class T>
struct AttnDkv {
  AttnParamsT<T> p;
  // Shared: K and V [BK, D + 1], dK and dV [BK, D], Q and dO [BQ, D], P·M and dS [BQ, BK], lse and D [BQ].
  static int64_t shared_bytes(int64_t D) {
    return int64_t(sizeof(float)) * (2 * kAttnBK * attn_kv_ld(D) + 2 * kAttnBK * D + 2 * kAttnBQ * D + 2 * kAttnBQ * kAttnBK + 2 * kAttnBQ);
  }
  // 0: init; 4 per (query head of the group, query tile) (load, scores, dS, accumulate); last: write.
  KFAC_HD int phases(int) const { return int(2 + 4 * (p.H / p.Hkv) * attn_query_tiles(p)); }
  KFAC_HD void phase(int ph, const hd::Idx& i, unsigned char* shared) const {
    const int64_t D = p.D, L = attn_kv_ld(D), nct = attn_cap_tiles(p), nqt = attn_query_tiles(p);
    const int64_t g = (i.block / nct) % p.Hkv, b = i.block / (nct * p.Hkv), j0 = (i.block % nct) * kAttnBK;
    const int64_t kb = attn_max(0, attn_min(kAttnBK, p.Tk - j0)), rows = attn_min(kAttnBK, p.Tcap - j0);
    float* sK = reinterpret_cast<float*>(shared);
    float *sV = sK + kAttnBK * L, *sdK = sV + kAttnBK * L, *sdV = sdK + kAttnBK * D, *sQ = sdV + kAttnBK * D;
    float *sG = sQ + kAttnBQ * D, *sS = sG + kAttnBQ * D, *sP = sS + kAttnBQ * kAttnBK, *sLse = sP + kAttnBQ * kAttnBK;
    float* sDr = sLse + kAttnBQ;
    if (ph == 0) {
      attn_load_kv(p, b, g, j0, kb, sK, sV, L, i);
      for (int64_t e = i.thread; e < kAttnBK * D; e += i.threads) sdK[e] = 0.f, sdV[e] = 0.f;
      return;
    }
    if (ph == phases(i.threads) - 1) return attn_dkv_finish(p, b, g, j0, kb, rows, sdK, sdV, D, i);
    const int64_t u = (ph - 1) / 4, h = g * (p.H / p.Hkv) + u / nqt, i0 = (u % nqt) * kAttnBQ;
    const int64_t m = attn_min(kAttnBQ, p.Tq - i0);
    // Nothing to add when the tile has no key below Tk, or (causal) no row of the query tile
    // reaches key j0: query i sees j0 only when i + (Tk − Tq) ≥ j0.
    if (kb == 0 || (p.causal && i0 + m - 1 + (p.Tk - p.Tq) < j0)) return;
    switch ((ph - 1) % 4) {
      case 0:
        attn_load(sQ, D, p.q + attn_qrow(p, b, i0, h), p.H * D, m, kAttnBQ, D, i);
        attn_load(sG, D, p.dout + attn_qrow(p, b, i0, h), p.H * D, m, kAttnBQ, D, i);
        attn_dkv_rows(p, b, h, i0, m, sLse, sDr, i);
        break;
      case 1: attn_scores(p, b, h, i0, m, j0, sQ, sK, sS, sG, sV, sP, i); break;
      case 2: attn_softmax_grad(p, b, h, i0, j0, sLse, sDr, sS, sP, false, i); break;
      default:  // dV += (P·M)ᵀ dO ; dK += dSᵀ Q
        for (int64_t e = i.thread; e < kAttnBK * D; e += i.threads) {
          const int64_t j = e / D, c = e % D;
          float av = sdV[e], ak = sdK[e];
          for (int r = 0; r < kAttnBQ; ++r) {
            av += sS[r * kAttnBK + j] * sG[r * D + c];
            ak += sP[r * kAttnBK + j] * sQ[r * D + c];
          }
          sdV[e] = av, sdK[e] = ak;
        }
    }
  }
};

}  // namespace kfac::nnk
