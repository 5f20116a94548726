// RoPE in the CUDA emulation: the bodies of native/cuda/nn_rope_body.h on the host.
#include "../cuda/nn_rope_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void rope_kernels(Kernels& k) { nnk::rope_kernels<Exec>(k); }
}  // namespace kfac::emu
