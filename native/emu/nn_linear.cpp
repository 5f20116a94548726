// Linear in the CUDA emulation: the bodies of native/cuda/nn_linear_body.h on the host.
#include "../cuda/nn_linear_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void linear_kernels(Kernels& k) { nnk::linear_kernels<Exec>(k); }
}  // namespace kfac::emu
