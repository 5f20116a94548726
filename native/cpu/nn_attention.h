// Scaled dot-product attention, multi-head and grouped-query, on the CPU.
//   q [B, Tq, H, D], k and v [B, Tk, Hkv, D] with Hkv dividing H: query head h reads key/value
//   head h / (H / Hkv). Usually Tq = Tk = T; Tk > Tq is a KV cache whose last Tq keys are the
//   queries' own positions.
//   causal: query i sees keys j ≤ i + (Tk − Tq). mask [B, Tk] or null: keys whose mask value
//   is 0 are padding and never seen. A query row that sees no key outputs 0 (lse = +inf).
#pragma once
#include <cstdint>

namespace kfac::cpu {

struct AttentionDims {
  int64_t B, Tq, Tk, H, Hkv, D;
};

// → out [B, Tq, H, D] (=), lse [B, H, Tq] (=): the log-sum-exp of each row of scaled scores,
// which is all the backward needs to rebuild the softmax probabilities.
void attention_forward(const float* q, const float* k, const float* v, const float* mask, float* out,
                       float* lse, const AttentionDims& d, bool causal, float scale);

// dout [B, Tq, H, D] → dq [B, Tq, H, D] (=), dk, dv [B, Tk, Hkv, D] (=; the heads of a group
// are summed in head order by one thread, so the result does not depend on the thread count).
void attention_backward(const float* q, const float* k, const float* v, const float* mask,
                        const float* lse, const float* dout, float* dq, float* dk, float* dv,
                        const AttentionDims& d, bool causal, float scale);

}  // namespace kfac::cpu
