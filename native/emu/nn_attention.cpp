// Attention in the CUDA emulation: the block bodies of native/cuda/nn_attention_body.h on the host.
#include "../cuda/nn_attention_launch.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void attention_kernels(Kernels& k) { nnk::attention_kernels<Exec>(k); }
}  // namespace kfac::emu
