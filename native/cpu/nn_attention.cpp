// GCC will not if-convert the clamps and selects of the softmax loops while floating-point
// traps are assumed observable; nothing here reads FP exception flags, so allow it (the loops
// then vectorise). Numerics are unchanged: no reassociation, no finite-math assumptions.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "nn_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "gemm.h"
#include "nn_softmax.h"
#include "threadpool.h"

namespace kfac::cpu {

using namespace softmax;

namespace {

// Per-thread scratch reused across calls (no allocation once it has grown to T×T).
float* scratch(int which, size_t n) {
  thread_local std::vector<float> buf[4];
  std::vector<float>& b = buf[which];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// Additive key bias of one batch row: 0 for real keys, −inf for padding; null without a mask.
const float* key_bias(const float* mb, int64_t Tk) {
  if (!mb) return nullptr;
  float* kb = scratch(2, size_t(std::max<int64_t>(Tk, 1)));
  for (int64_t j = 0; j < Tk; ++j) kb[j] = mb[j] != 0.f ? 0.f : -kInf;
  return kb;
}

// Last key index (inclusive) that query i may see, before the padding mask.
inline int64_t last_key(const AttentionDims& d, bool causal, int64_t i) {
  return causal ? std::min(d.Tk - 1, i + (d.Tk - d.Tq)) : d.Tk - 1;
}

// Runs fn(unit) for every unit. With at least as many units as threads the units run in
// parallel (each GEMM inside on one thread); otherwise one after another, each GEMM using
// the whole pool.
template <class F>
void for_units(int64_t units, F&& fn) {
  if (units >= num_threads())
    parallel_for(units, 1, [&](int64_t s, int64_t e) {
      for (int64_t u = s; u < e; ++u) fn(u);
    });
  else
    for (int64_t u = 0; u < units; ++u) fn(u);
}

}  // namespace

// Causal attention works on blocks of query rows: a block only needs the keys its last row
// may see, so the GEMMs skip most of the masked upper triangle (about half the work at Tq = Tk).
constexpr int64_t kCausalBlock = 32;

inline int64_t block_rows(const AttentionDims& d, bool causal) { return causal ? kCausalBlock : std::max<int64_t>(d.Tq, 1); }

// Keys needed by query rows [i0, i1): 0 .. last_key(i1 − 1), clamped to [0, Tk].
inline int64_t block_keys(const AttentionDims& d, bool causal, int64_t i1) {
  return std::max<int64_t>(0, std::min<int64_t>(d.Tk, last_key(d, causal, i1 - 1) + 1));
}

// Dropout multipliers (0 or 1/(1 − p)) of keys [0, n) in the row starting at element `base`.
void dropout_row(float* mk, int64_t n, const DropoutMask& m, uint64_t base) {
  for (int64_t j = 0; j < n; ++j) mk[j] = m.keep(base + uint64_t(j)) ? m.scale : 0.f;
}

void attention_forward(const float* q, const float* k, const float* v, const float* mask, float* out,
                       float* lse, const AttentionDims& d, bool causal, float scale, const DropoutMask* drop,
                       const float* bias) {
  const int64_t B = d.B, Tq = d.Tq, Tk = d.Tk, H = d.H, Hkv = d.Hkv, D = d.D, R = H / Hkv;
  if (B <= 0 || Tq <= 0 || H <= 0) return;
  const int64_t QB = block_rows(d, causal);
  for_units(B * H, [&](int64_t u) {
    const int64_t b = u / H, h = u % H, g = h / R;
    const float* kp = k + (b * d.Tcap * Hkv + g) * D;
    const float* vp = v + (b * d.Tcap * Hkv + g) * D;
    const float* kb = key_bias(mask ? mask + b * d.Tcap : nullptr, Tk);
    float* lp = lse + (b * H + h) * Tq;
    float* S = scratch(0, size_t(std::min(QB, Tq)) * size_t(std::max<int64_t>(Tk, 1)));
    for (int64_t i0 = 0; i0 < Tq; i0 += QB) {
      const int64_t i1 = std::min(Tq, i0 + QB), m = i1 - i0, nk = block_keys(d, causal, i1);
      const float* qp = q + ((b * Tq + i0) * H + h) * D;
      float* op = out + ((b * Tq + i0) * H + h) * D;
      // S[m, nk] = scale · Q[i0:i1, D] · K[0:nk, D]ᵀ
      sgemm(false, true, m, nk, D, scale, qp, H * D, kp, Hkv * D, 0.f, S, nk);
      parallel_for(m, std::max<int64_t>(1, 4096 / std::max<int64_t>(nk, 1)), [&](int64_t s, int64_t e) {
        for (int64_t r = s; r < e; ++r) {
          const int64_t i = i0 + r;
          float* row = S + r * nk;
          // Keys [0, n) are visible before the padding mask; the rest of the block row is not.
          const int64_t n = std::min(last_key(d, causal, i), nk - 1) + 1;
          if (bias) {
            const float* br = bias + (h * Tq + i) * Tk;
            for (int64_t j = 0; j < n; ++j) row[j] += br[j];
          }
          if (kb)
            for (int64_t j = 0; j < n; ++j) row[j] += kb[j];
          const float mx = n > 0 ? row_max(row, n) : -kInf;
          if (mx == -kInf) {  // no visible key: the row outputs 0
            std::fill(row, row + nk, 0.f);
            lp[i] = kInf;
            continue;
          }
          const double sum = exp_shift_sum(row, n, mx);
          const float inv = float(1.0 / sum);
          for (int64_t j = 0; j < n; ++j) row[j] *= inv;
          if (drop) {
            const uint64_t base = uint64_t(((b * H + h) * Tq + i) * Tk);
            for (int64_t j = 0; j < n; ++j)
              if (!drop->keep(base + uint64_t(j))) row[j] = 0.f;
              else row[j] *= drop->scale;
          }
          std::fill(row + n, row + nk, 0.f);
          lp[i] = float(double(mx) + std::log(sum));
        }
      });
      // O[i0:i1, D] = P[m, nk] · V[0:nk, D]   (nk = 0 writes zeros)
      sgemm(false, false, m, D, nk, 1.f, S, nk, vp, Hkv * D, 0.f, op, H * D);
    }
  });
}

void attention_backward(const float* q, const float* k, const float* v, const float* mask,
                        const float* lse, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionDims& d, bool causal, float scale, const DropoutMask* drop,
                        const float* bias, float* dbias) {
  const int64_t B = d.B, Tq = d.Tq, Tk = d.Tk, H = d.H, Hkv = d.Hkv, D = d.D, R = H / Hkv;
  if (B <= 0 || Hkv <= 0) return;
  const int64_t QB = block_rows(d, causal);
  // One unit per (batch, kv head): it owns dk/dv of that head, zeroes them, then adds the
  // contributions of its query heads and row blocks in a fixed order.
  for_units(B * Hkv, [&](int64_t u) {
    const int64_t b = u / Hkv, g = u % Hkv;
    const float* kp = k + (b * d.Tcap * Hkv + g) * D;
    const float* vp = v + (b * d.Tcap * Hkv + g) * D;
    float* dkp = dk + (b * d.Tcap * Hkv + g) * D;
    float* dvp = dv + (b * d.Tcap * Hkv + g) * D;
    const float* kb = key_bias(mask ? mask + b * d.Tcap : nullptr, Tk);
    // Zero the whole capacity of this head (rows past Tk receive no gradient).
    for (int64_t j = 0; j < d.Tcap; ++j)
      for (int64_t c = 0; c < D; ++c) dkp[j * Hkv * D + c] = dvp[j * Hkv * D + c] = 0.f;
    if (Tq <= 0 || R <= 0) return;
    const size_t tt = size_t(std::min(QB, Tq)) * size_t(std::max<int64_t>(Tk, 1));
    float* P = scratch(0, tt);
    float* dS = scratch(1, tt);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h = g * R + r;
      const float* lp = lse + (b * H + h) * Tq;
      for (int64_t i0 = 0; i0 < Tq; i0 += QB) {
        const int64_t i1 = std::min(Tq, i0 + QB), m = i1 - i0, nk = block_keys(d, causal, i1);
        const float* qp = q + ((b * Tq + i0) * H + h) * D;
        const float* dop = dout + ((b * Tq + i0) * H + h) * D;
        float* dqp = dq + ((b * Tq + i0) * H + h) * D;
        sgemm(false, true, m, nk, D, scale, qp, H * D, kp, Hkv * D, 0.f, P, nk);
        // dP[m, nk] = dO[i0:i1, D] · V[0:nk, D]ᵀ (the gradient of the dropped P when dropout is on)
        sgemm(false, true, m, nk, D, 1.f, dop, H * D, vp, Hkv * D, 0.f, dS, nk);
        parallel_for(m, std::max<int64_t>(1, 4096 / std::max<int64_t>(nk, 1)), [&](int64_t s, int64_t e) {
          for (int64_t rr = s; rr < e; ++rr) {
            const int64_t i = i0 + rr;
            float* prow = P + rr * nk;
            float* drow = dS + rr * nk;
            const int64_t n = lp[i] == kInf ? 0 : std::min(last_key(d, causal, i), nk - 1) + 1;
            if (bias) {
              const float* br = bias + (h * Tq + i) * Tk;
              for (int64_t j = 0; j < n; ++j) prow[j] += br[j];
            }
            if (kb)
              for (int64_t j = 0; j < n; ++j) prow[j] += kb[j];
            exp_shift_sum(prow, n, lp[i]);  // P = exp(S − lse): the forward's probabilities
            std::fill(prow + n, prow + nk, 0.f);
            float* mk = nullptr;
            if (drop) {  // drow holds ∂/∂(P·M): the gradient of P is drow·M
              mk = scratch(3, size_t(std::max<int64_t>(n, 1)));
              dropout_row(mk, n, *drop, uint64_t(((b * H + h) * Tq + i) * Tk));
              for (int64_t j = 0; j < n; ++j) drow[j] *= mk[j];
            }
            const float di = float(row_dot(prow, drow, n));
            for (int64_t j = 0; j < nk; ++j) drow[j] = prow[j] * (drow[j] - di);  // dS = P ⊙ (dP − Σ P·dP)
            if (dbias) {  // ∂/∂bias of this (b, h, i) row is dS; keys past the block are never seen
              float* dbr = dbias + ((b * H + h) * Tq + i) * Tk;
              std::copy(drow, drow + nk, dbr);
              std::fill(dbr + nk, dbr + Tk, 0.f);
            }
            if (mk)
              for (int64_t j = 0; j < n; ++j) prow[j] *= mk[j];  // the dropped P the forward used, for dV
          }
        });
        // dV[0:nk] += Pᵀ · dO ;  dQ[i0:i1] = scale · dS · K[0:nk] ;  dK[0:nk] += scale · dSᵀ · Q
        sgemm(true, false, nk, D, m, 1.f, P, nk, dop, H * D, 1.f, dvp, Hkv * D);
        sgemm(false, false, m, D, nk, scale, dS, nk, kp, Hkv * D, 0.f, dqp, H * D);
        sgemm(true, false, nk, D, m, scale, dS, nk, qp, H * D, 1.f, dkp, Hkv * D);
      }
    }
  });
}

void kv_cache_write(const float* src, float* cache, int64_t B, int64_t T, int64_t Tcap, int64_t HD,
                    int64_t offset) {
  parallel_for(B * T, std::max<int64_t>(1, 16384 / std::max<int64_t>(HD, 1)), [=](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const int64_t b = r / T, t = r % T;
      std::copy(src + r * HD, src + (r + 1) * HD, cache + (b * Tcap + offset + t) * HD);
    }
  });
}

}  // namespace kfac::cpu
