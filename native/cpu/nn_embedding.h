// Token embedding lookup. N = B·T token ids, V rows of C values.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// ids [N] (each in [0, V), checked by the caller), W [V, C] → out [N, C] (=).
void embedding_forward(const int32_t* ids, const float* W, float* out, int64_t N, int64_t C);

// dout [N, C] → dW [V, C] (+=, scatter-add). Each thread owns a range of columns and adds
// rows in id order, so the result is bitwise the same for any thread count.
void embedding_backward(const int32_t* ids, const float* dout, float* dW, int64_t N, int64_t C);

}  // namespace kfac::cpu
