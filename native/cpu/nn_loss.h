// Softmax cross-entropy over logits [N, V] (N = B·T rows, V classes) with integer targets.
#pragma once
#include <cstdint>

namespace kfac::cpu {

// targets [N]: each in [0, V) or equal to ignore_index (checked by the caller).
// Returns the mean of −log softmax(logits)[target] over the rows that are not ignored
// (0 when every row is ignored), accumulated in double in row order (deterministic).
// When dlogits is not null it is overwritten (=) with dscale·∂loss/∂logits:
// (softmax − onehot(target))·dscale/count on counted rows, 0 on ignored rows. dlogits may
// alias logits (the gradient then replaces the logits, as llm.c does to save memory).
// `count` receives the number of rows that were not ignored.
double cross_entropy(const float* logits, const int32_t* targets, float* dlogits, int64_t N, int64_t V,
                     int32_t ignore_index, float dscale, int64_t* count);

}  // namespace kfac::cpu
