// LayerNorm, RMSNorm in the CUDA emulation: the bodies of native/cuda/nn_norm_body.h on the host.
#include "../cuda/nn_norm_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void norm_kernels(Kernels& k) { nnk::norm_kernels<Exec>(k); }
}  // namespace kfac::emu
