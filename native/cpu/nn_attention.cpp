#include "nn_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "gemm.h"
#include "threadpool.h"

namespace kfac::cpu {

namespace {

// Per-thread scratch reused across calls (no allocation once it has grown to T×T).
float* scratch(int which, size_t n) {
  thread_local std::vector<float> buf[2];
  std::vector<float>& b = buf[which];
  if (b.size() < n) b.resize(n);
  return b.data();
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

void attention_forward(const float* q, const float* k, const float* v, const float* mask, float* out,
                       float* lse, const AttentionDims& d, bool causal, float scale) {
  const int64_t B = d.B, Tq = d.Tq, Tk = d.Tk, H = d.H, Hkv = d.Hkv, D = d.D, R = H / Hkv;
  if (B <= 0 || Tq <= 0 || H <= 0) return;
  const float inf = std::numeric_limits<float>::infinity();
  for_units(B * H, [&](int64_t u) {
    const int64_t b = u / H, h = u % H, g = h / R;
    const float* qp = q + (b * Tq * H + h) * D;
    const float* kp = k + (b * Tk * Hkv + g) * D;
    const float* vp = v + (b * Tk * Hkv + g) * D;
    float* op = out + (b * Tq * H + h) * D;
    float* lp = lse + (b * H + h) * Tq;
    float* S = scratch(0, size_t(Tq) * size_t(std::max<int64_t>(Tk, 1)));
    // S[Tq, Tk] = scale · Q[Tq, D] · K[Tk, D]ᵀ
    sgemm(false, true, Tq, Tk, D, scale, qp, H * D, kp, Hkv * D, 0.f, S, Tk);
    const float* mb = mask ? mask + b * Tk : nullptr;
    parallel_for(Tq, std::max<int64_t>(1, 4096 / std::max<int64_t>(Tk, 1)), [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        float* row = S + i * Tk;
        int64_t last = last_key(d, causal, i);
        float mx = -inf;
        for (int64_t j = 0; j <= last; ++j)
          if (!mb || mb[j] != 0.f) mx = std::max(mx, row[j]);
        if (mx == -inf) {  // no visible key
          std::fill(row, row + Tk, 0.f);
          lp[i] = inf;
          continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < Tk; ++j) {
          float p = (j <= last && (!mb || mb[j] != 0.f)) ? std::exp(row[j] - mx) : 0.f;
          row[j] = p;
          sum += p;
        }
        float inv = float(1.0 / sum);
        for (int64_t j = 0; j <= last; ++j) row[j] *= inv;
        lp[i] = float(double(mx) + std::log(sum));
      }
    });
    // O[Tq, D] = P[Tq, Tk] · V[Tk, D]
    sgemm(false, false, Tq, D, Tk, 1.f, S, Tk, vp, Hkv * D, 0.f, op, H * D);
  });
}

void attention_backward(const float* q, const float* k, const float* v, const float* mask,
                        const float* lse, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionDims& d, bool causal, float scale) {
  const int64_t B = d.B, Tq = d.Tq, Tk = d.Tk, H = d.H, Hkv = d.Hkv, D = d.D, R = H / Hkv;
  if (B <= 0 || Hkv <= 0) return;
  const float inf = std::numeric_limits<float>::infinity();
  // One unit per (batch, kv head): it owns dk/dv of that head and walks its query heads in order.
  for_units(B * Hkv, [&](int64_t u) {
    const int64_t b = u / Hkv, g = u % Hkv;
    const float* kp = k + (b * Tk * Hkv + g) * D;
    const float* vp = v + (b * Tk * Hkv + g) * D;
    float* dkp = dk + (b * Tk * Hkv + g) * D;
    float* dvp = dv + (b * Tk * Hkv + g) * D;
    const float* mb = mask ? mask + b * Tk : nullptr;
    if (Tq <= 0 || R <= 0) {  // no queries: nothing flows into k and v
      for (int64_t j = 0; j < Tk; ++j)
        for (int64_t c = 0; c < D; ++c) dkp[j * Hkv * D + c] = dvp[j * Hkv * D + c] = 0.f;
      return;
    }
    size_t tt = size_t(Tq) * size_t(std::max<int64_t>(Tk, 1));
    float* P = scratch(0, tt);
    float* dS = scratch(1, tt);
    for (int64_t r = 0; r < R; ++r) {
      const int64_t h = g * R + r;
      const float* qp = q + (b * Tq * H + h) * D;
      const float* dop = dout + (b * Tq * H + h) * D;
      float* dqp = dq + (b * Tq * H + h) * D;
      const float* lp = lse + (b * H + h) * Tq;
      const float beta = r == 0 ? 0.f : 1.f;  // first head of the group overwrites dk/dv
      sgemm(false, true, Tq, Tk, D, scale, qp, H * D, kp, Hkv * D, 0.f, P, Tk);
      // dP[Tq, Tk] = dO[Tq, D] · V[Tk, D]ᵀ
      sgemm(false, true, Tq, Tk, D, 1.f, dop, H * D, vp, Hkv * D, 0.f, dS, Tk);
      parallel_for(Tq, std::max<int64_t>(1, 4096 / std::max<int64_t>(Tk, 1)), [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) {
          float* prow = P + i * Tk;
          float* drow = dS + i * Tk;
          int64_t last = last_key(d, causal, i);
          float l = lp[i];
          double dot = 0;
          for (int64_t j = 0; j < Tk; ++j) {
            float p = (l != inf && j <= last && (!mb || mb[j] != 0.f)) ? std::exp(prow[j] - l) : 0.f;
            prow[j] = p;
            dot += double(p) * drow[j];
          }
          float di = float(dot);
          for (int64_t j = 0; j < Tk; ++j) drow[j] = prow[j] * (drow[j] - di);  // dS = P ⊙ (dP − Σ P·dP)
        }
      });
      // dV[Tk, D] (=|+=) Pᵀ · dO ;  dQ[Tq, D] = scale · dS · K ;  dK[Tk, D] (=|+=) scale · dSᵀ · Q
      sgemm(true, false, Tk, D, Tq, 1.f, P, Tk, dop, H * D, beta, dvp, Hkv * D);
      sgemm(false, false, Tq, D, Tk, scale, dS, Tk, kp, Hkv * D, 0.f, dqp, H * D);
      sgemm(true, false, Tk, D, Tq, scale, dS, Tk, qp, H * D, beta, dkp, Hkv * D);
    }
  });
}

}  // namespace kfac::cpu
