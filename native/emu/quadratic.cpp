// The Kronecker quadratic form in the CUDA emulation: native/cuda/quadratic_body.h on the host.
#include "../cuda/nn_kernels.h"
#include "../cuda/quadratic_body.h"
#include "exec.h"

namespace kfac::emu {
void quadratic_kernels(Kernels& k) { nnk::quadratic_kernels<Exec>(k); }
}  // namespace kfac::emu
