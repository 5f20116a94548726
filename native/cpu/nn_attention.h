// Scaled dot-product attention, multi-head and grouped-query, on the CPU, blocked in the
// FlashAttention-2 manner (scores held one block of 32 (causal) or 128 queries × 256 keys at a time).
//   q [B, Tq, H, D], k and v [B, Tk, Hkv, D] with Hkv dividing H: query head h reads key/value
//   head h / (H / Hkv). Usually Tq = Tk = T; Tk > Tq is a KV cache whose last Tq keys are the
//   queries' own positions.
//   causal: query i sees keys j ≤ i + (Tk − Tq). mask [B, Tk] or null: keys whose mask value
//   is 0 are padding and never seen. A query row that sees no key outputs 0 (lse = +inf).
//   KV cache: k, v (and dk, dv, mask) may be buffers of Tcap ≥ Tk time steps, [B, Tcap, Hkv, D]
//   and [B, Tcap], of which the first Tk are used.
//   bias [H, Tq, Tk] or null: added to the scaled scores of every batch row before the mask and
//   the softmax (T5's relative position bias); dbias [B, H, Tq, Tk] (=) receives its gradient per
//   batch row (the caller sums over B), zero where a key is never seen.
#pragma once
#include <cstdint>

#include "nn_dropout.h"

namespace kfac::cpu {

struct AttentionDims {
  int64_t B, Tq, Tk, H, Hkv, D;
  int64_t Tcap;  // time steps allocated in k/v/mask (≥ Tk)
};

// → out [B, Tq, H, D] (=), lse [B, H, Tq] (=): the log-sum-exp of each row of scaled scores,
// which is all the backward needs to rebuild the softmax probabilities.
// drop (or null): dropout on the probabilities, element (b, h, i, j) kept iff
// drop->keep(((b·H + h)·Tq + i)·Tk + j) — the same scheme and indices as dropout_forward on a
// [B, H, Tq, Tk] tensor — and scaled by 1/(1 − p). lse stays that of the undropped softmax.
void attention_forward(const float* q, const float* k, const float* v, const float* mask, float* out,
                       float* lse, const AttentionDims& d, bool causal, float scale,
                       const DropoutMask* drop = nullptr, const float* bias = nullptr);

// dout [B, Tq, H, D] → dq [B, Tq, H, D] (=), dk, dv [B, Tcap, Hkv, D] (=, rows ≥ Tk zero; the heads of a group
// are summed in head order by one thread, so the result does not depend on the thread count).
// out: the forward's output [B, Tq, H, D], for D = rowsum(dO ∘ O) when a query block's keys span
// several key blocks; null then costs a first pass over the keys that rebuilds D from the
// probabilities (two more block products per key block).
void attention_backward(const float* q, const float* k, const float* v, const float* mask,
                        const float* lse, const float* out, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionDims& d, bool causal, float scale, const DropoutMask* drop = nullptr,
                        const float* bias = nullptr, float* dbias = nullptr);

// cache [B, Tcap, HD]: rows offset .. offset+T−1 of every batch ← src [B, T, HD] (=).
void kv_cache_write(const float* src, float* cache, int64_t B, int64_t T, int64_t Tcap, int64_t HD,
                    int64_t offset);

}  // namespace kfac::cpu
