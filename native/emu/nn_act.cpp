// GELU, SiLU, SwiGLU, ReLU, gated units in the CUDA emulation: the bodies of native/cuda/nn_act_body.h on the host.
#include "../cuda/nn_act_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void act_kernels(Kernels& k) { nnk::act_kernels<Exec>(k); }
}  // namespace kfac::emu
