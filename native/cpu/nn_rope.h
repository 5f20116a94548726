// Rotary position embedding on x [B, T, H, D] (D even), position of token t = offset + t
// (offset > 0 continues a KV cache). Frequencies θ_i = base^(−2i/D), i < D/2, angle pos·θ_i
// computed in double. Pairs rotated by the angle:
//   Half (Hugging Face rotate_half): (x[i], x[i + D/2]);
//   Interleaved (llama2.c, Meta):    (x[2i], x[2i + 1]).
// (y1, y2) = (x1 cos − x2 sin, x1 sin + x2 cos).
#pragma once
#include <cstdint>

namespace kfac::cpu {

enum class RopeKind { Half = 0, Interleaved = 1 };

// out [B, T, H, D] (=) = rotate(x). out may alias x.
void rope_forward(const float* x, float* out, int64_t B, int64_t T, int64_t H, int64_t D, int64_t offset,
                  double base, RopeKind kind);
// dx [B, T, H, D] (=) = rotateᵀ(dout), the rotation by −angle. dx may alias dout.
void rope_backward(const float* dout, float* dx, int64_t B, int64_t T, int64_t H, int64_t D,
                   int64_t offset, double base, RopeKind kind);

}  // namespace kfac::cpu
