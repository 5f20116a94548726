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

// Blocked attention in the FlashAttention-2 order. The scores are only ever held one block
// at a time: 32 (causal) or 128 query rows × 256 keys per thread, whatever T is.
// An additive score bias [H, Tq, Tk] (T5) is added to each block of scores as it is formed; its
// gradient (per batch row) is the block's dS, written as the backward forms it.
//   forward:  query blocks outer, key blocks inner; an online softmax keeps each row's running
//             maximum m and sum l, rescales the output rows by exp(m_old − m_new) when the
//             maximum grows, and divides by l at the end; lse = m + log l is saved.
//   backward: per query block, P is rebuilt block by block from lse, D = rowsum(dO ∘ O) (the
//             row sum Σ P·dP when a single key block holds the row), and dS = P ∘ (dP − D)
//             feeds dQ, dK, dV; the five products are GEMMs on the blocks.
namespace kfac::cpu {

using namespace softmax;

namespace {

// Query rows per block: 32 under a causal mask (a block's GEMMs then skip most of the masked
// upper triangle), 128 otherwise (fewer, larger GEMMs; each packs its key block once per block).
constexpr int64_t kQBlockCausal = 32, kQBlockFull = 128;
constexpr int64_t kKBlock = 256;  // keys per block
inline int64_t q_block(bool causal) { return causal ? kQBlockCausal : kQBlockFull; }

// Per-thread scratch reused across calls (fixed size: a block of scores, a few rows).
float* scratch(int which, size_t n) {
  thread_local std::vector<float> buf[4];
  std::vector<float>& b = buf[which];
  if (b.size() < n) b.resize(n);
  return b.data();
}
double* scratch_d(size_t n) {
  thread_local std::vector<double> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Last key index (inclusive) that query i may see, before the padding mask.
inline int64_t last_key(const AttentionDims& d, bool causal, int64_t i) {
  return causal ? std::min(d.Tk - 1, i + (d.Tk - d.Tq)) : d.Tk - 1;
}

// Keys needed by query rows [i0, i1): 0 .. last_key(i1 − 1), clamped to [0, Tk].
inline int64_t block_keys(const AttentionDims& d, bool causal, int64_t i1) {
  return std::max<int64_t>(0, std::min<int64_t>(d.Tk, last_key(d, causal, i1 - 1) + 1));
}

// Visible keys of row i inside the key block starting at j0 of width kb: [0, n).
inline int64_t visible(const AttentionDims& d, bool causal, int64_t i, int64_t j0, int64_t kb) {
  return std::clamp<int64_t>(last_key(d, causal, i) - j0 + 1, 0, kb);
}

// The score bias of the block's row (T5's position bias), added before the padding mask.
inline void add_bias(float* row, const float* br, int64_t n) {
  if (br)
    for (int64_t j = 0; j < n; ++j) row[j] += br[j];
}

// Padding keys of the block (mask value 0) get score −inf.
inline void apply_mask(float* row, const float* mb, int64_t n) {
  if (mb)
    for (int64_t j = 0; j < n; ++j) row[j] = mb[j] != 0.f ? row[j] : -kInf;
}

// Dropout multipliers (0 or 1/(1 − p)) of n keys whose first element index is `base`.
inline void dropout_row(float* mk, int64_t n, const DropoutMask& m, uint64_t base) {
  for (int64_t j = 0; j < n; ++j) mk[j] = m.keep(base + uint64_t(j)) ? m.scale : 0.f;
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

// Rows [0, m) of a block, in parallel when the block is worth it.
template <class F>
void for_rows(int64_t m, int64_t kb, F&& fn) {
  parallel_for(m, std::max<int64_t>(1, 4096 / std::max<int64_t>(kb, 1)), [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) fn(r);
  });
}

}  // namespace

void attention_forward(const float* q, const float* k, const float* v, const float* mask, float* out,
                       float* lse, const AttentionDims& d, bool causal, float scale, const DropoutMask* drop,
                       const float* bias) {
  const int64_t B = d.B, Tq = d.Tq, Tk = d.Tk, H = d.H, Hkv = d.Hkv, D = d.D, R = H / Hkv;
  if (B <= 0 || Tq <= 0 || H <= 0) return;
  const int64_t QB = q_block(causal), nqb = (Tq + QB - 1) / QB;
  // One unit per (batch, head, query block): it owns those output rows and their lse.
  for_units(B * H * nqb, [&](int64_t u) {
    const int64_t b = u / (H * nqb), h = (u / nqb) % H, i0 = (u % nqb) * QB, g = h / R;
    const int64_t i1 = std::min(Tq, i0 + QB), m = i1 - i0, nk = block_keys(d, causal, i1);
    const float* kp = k + (b * d.Tcap * Hkv + g) * D;
    const float* vp = v + (b * d.Tcap * Hkv + g) * D;
    const float* mb = mask ? mask + b * d.Tcap : nullptr;
    const float* qp = q + ((b * Tq + i0) * H + h) * D;
    float* op = out + ((b * Tq + i0) * H + h) * D;
    float* lp = lse + (b * H + h) * Tq + i0;
    float* S = scratch(0, size_t(QB * kKBlock));
    float* mx = scratch(1, size_t(QB));  // running row maxima
    double* l = scratch_d(size_t(QB));   // running row sums of exp(s − mx)
    for (int64_t r = 0; r < m; ++r) {
      mx[r] = -kInf;
      l[r] = 0;
      if (nk == 0) std::fill(op + r * H * D, op + r * H * D + D, 0.f);  // else the first P V writes them
    }
    for (int64_t j0 = 0; j0 < nk; j0 += kKBlock) {
      const int64_t kb = std::min(kKBlock, nk - j0);
      // S[m, kb] = scale · Q[i0:i1] · K[j0:j0+kb]ᵀ
      sgemm(false, true, m, kb, D, scale, qp, H * D, kp + j0 * Hkv * D, Hkv * D, 0.f, S, kb);
      for_rows(m, kb, [&](int64_t r) {
        const int64_t i = i0 + r;
        float* row = S + r * kb;
        const int64_t n = visible(d, causal, i, j0, kb);
        add_bias(row, bias ? bias + (h * Tq + i) * Tk + j0 : nullptr, n);
        apply_mask(row, mb ? mb + j0 : nullptr, n);
        const float mnew = std::max(mx[r], n > 0 ? row_max(row, n) : -kInf);
        if (mnew == -kInf) {  // nothing visible so far
          std::fill(row, row + kb, 0.f);
          return;
        }
        const float alpha = exp_approx(mx[r] - mnew);  // 0 when the row had no key yet
        const double sum = exp_shift_sum(row, n, mnew);
        std::fill(row + n, row + kb, 0.f);
        l[r] = l[r] * alpha + sum;
        mx[r] = mnew;
        if (j0 > 0 && alpha != 1.f)
          for (float *o = op + r * H * D, *oe = o + D; o < oe; ++o) *o *= alpha;
        if (drop) {
          const uint64_t base = uint64_t(((b * H + h) * Tq + i) * Tk + j0);
          for (int64_t j = 0; j < n; ++j) row[j] = drop->keep(base + uint64_t(j)) ? row[j] * drop->scale : 0.f;
        }
      });
      // O[i0:i1] (+)= P[m, kb] · V[j0:j0+kb]  (the first block writes O)
      sgemm(false, false, m, D, kb, 1.f, S, kb, vp + j0 * Hkv * D, Hkv * D, j0 > 0 ? 1.f : 0.f, op, H * D);
    }
    for (int64_t r = 0; r < m; ++r) {
      if (mx[r] == -kInf) {  // no visible key: the row outputs 0
        lp[r] = kInf;
        continue;
      }
      const float inv = float(1.0 / l[r]);
      for (float *o = op + r * H * D, *oe = o + D; o < oe; ++o) *o *= inv;
      lp[r] = float(double(mx[r]) + std::log(l[r]));
    }
  });
}

void attention_backward(const float* q, const float* k, const float* v, const float* mask,
                        const float* lse, const float* out, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionDims& d, bool causal, float scale, const DropoutMask* drop,
                        const float* bias, float* dbias) {
  const int64_t B = d.B, Tq = d.Tq, Tk = d.Tk, H = d.H, Hkv = d.Hkv, D = d.D, R = H / Hkv;
  if (B <= 0 || Hkv <= 0) return;
  // One unit per (batch, kv head): it owns dk/dv of that head, zeroes them, then adds the
  // contributions of its query heads and query blocks in a fixed order.
  for_units(B * Hkv, [&](int64_t u) {
    const int64_t b = u / Hkv, g = u % Hkv;
    const float* kp = k + (b * d.Tcap * Hkv + g) * D;
    const float* vp = v + (b * d.Tcap * Hkv + g) * D;
    float* dkp = dk + (b * d.Tcap * Hkv + g) * D;
    float* dvp = dv + (b * d.Tcap * Hkv + g) * D;
    const float* mb = mask ? mask + b * d.Tcap : nullptr;
    // Zero the whole capacity of this head (rows past Tk receive no gradient).
    for (int64_t j = 0; j < d.Tcap; ++j)
      for (int64_t c = 0; c < D; ++c) dkp[j * Hkv * D + c] = dvp[j * Hkv * D + c] = 0.f;
    if (Tq <= 0 || R <= 0) return;
    const int64_t QB = q_block(causal);
    float* P = scratch(0, size_t(QB * kKBlock));
    float* dS = scratch(1, size_t(QB * kKBlock));
    float* Dr = scratch(3, size_t(QB));  // D = rowsum(dO ∘ O) of the block's rows
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h = g * R + r;
      const float* lp = lse + (b * H + h) * Tq;
      for (int64_t i0 = 0; i0 < Tq; i0 += QB) {
        const int64_t i1 = std::min(Tq, i0 + QB), m = i1 - i0, nk = block_keys(d, causal, i1);
        const int64_t row0 = ((b * Tq + i0) * H + h) * D;
        const float* qp = q + row0;
        const float* dop = dout + row0;
        float* dqp = dq + row0;
        // P[m, kb] = exp(scale · Q Kᵀ + bias − lse) (the forward's probabilities) and
        // dS ← dP = dO Vᵀ (the gradient of the dropped P when dropout is on), for keys [j0, j0+kb).
        // With `final`, dS ← P ∘ (dP·M − D) and P ← P·M (the dropped P the forward used).
        // D = rowsum(dO ∘ O) when the keys span several blocks; when one key block holds the
        // whole row it is that block's own Σ P·(dP·M), with no read of O.
        const bool single = nk <= kKBlock;
        auto block = [&](int64_t j0, int64_t kb, bool final) {
          sgemm(false, true, m, kb, D, scale, qp, H * D, kp + j0 * Hkv * D, Hkv * D, 0.f, P, kb);
          sgemm(false, true, m, kb, D, 1.f, dop, H * D, vp + j0 * Hkv * D, Hkv * D, 0.f, dS, kb);
          for_rows(m, kb, [&](int64_t rr) {
            const int64_t i = i0 + rr;
            float* prow = P + rr * kb;
            float* drow = dS + rr * kb;
            const int64_t n = lp[i] == kInf ? 0 : visible(d, causal, i, j0, kb);
            add_bias(prow, bias ? bias + (h * Tq + i) * Tk + j0 : nullptr, n);
            apply_mask(prow, mb ? mb + j0 : nullptr, n);
            exp_shift_sum(prow, n, lp[i]);
            std::fill(prow + n, prow + kb, 0.f);
            if (drop) {
              float* mk = scratch(2, size_t(kKBlock));
              dropout_row(mk, n, *drop, uint64_t(((b * H + h) * Tq + i) * Tk + j0));
              for (int64_t j = 0; j < n; ++j) drow[j] *= mk[j];
              if (final)
                for (int64_t j = 0; j < n; ++j) mk[j] *= prow[j];  // P·M, for dV
            }
            if (!final) {
              Dr[rr] += float(row_dot(prow, drow, n));
              return;
            }
            const float di = single ? float(row_dot(prow, drow, n)) : Dr[rr];
            for (int64_t j = 0; j < kb; ++j) drow[j] = prow[j] * (drow[j] - di);  // dS = P ∘ (dP − D)
            if (dbias)  // ∂/∂bias of row (b, h, i) is dS (0 where a key is not seen)
              std::copy(drow, drow + kb, dbias + ((b * H + h) * Tq + i) * Tk + j0);
            if (drop) std::copy(scratch(2, 0), scratch(2, 0) + n, prow);
          });
        };
        if (!single && out) {
          for (int64_t rr = 0; rr < m; ++rr) {
            const int64_t o = rr * H * D;
            Dr[rr] = float(row_dot(dop + o, out + row0 + o, D));
          }
        } else if (!single) {  // no forward output given: accumulate D = Σ_j P·M·dP over the key blocks first
          std::fill(Dr, Dr + m, 0.f);
          for (int64_t j0 = 0; j0 < nk; j0 += kKBlock) block(j0, std::min(kKBlock, nk - j0), false);
        }
        if (nk == 0)  // else the first key block writes dQ
          for (int64_t rr = 0; rr < m; ++rr) std::fill(dqp + rr * H * D, dqp + rr * H * D + D, 0.f);
        if (dbias)  // keys past the block's last are never seen: their bias gets no gradient
          for (int64_t rr = 0; rr < m; ++rr) {
            float* dbr = dbias + ((b * H + h) * Tq + i0 + rr) * Tk;
            std::fill(dbr + nk, dbr + Tk, 0.f);
          }
        for (int64_t j0 = 0; j0 < nk; j0 += kKBlock) {
          const int64_t kb = std::min(kKBlock, nk - j0);
          block(j0, kb, true);
          // dV[j0:] += (P·M)ᵀ dO ;  dQ[i0:i1] (+)= scale · dS · K[j0:] ;  dK[j0:] += scale · dSᵀ · Q
          sgemm(true, false, kb, D, m, 1.f, P, kb, dop, H * D, 1.f, dvp + j0 * Hkv * D, Hkv * D);
          sgemm(false, false, m, D, kb, scale, dS, kb, kp + j0 * Hkv * D, Hkv * D, j0 > 0 ? 1.f : 0.f, dqp, H * D);
          sgemm(true, false, kb, D, m, scale, dS, kb, qp, H * D, 1.f, dkp + j0 * Hkv * D, Hkv * D);
        }
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
