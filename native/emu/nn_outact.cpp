// tanh and relu (derivative from the output) in the CUDA emulation: native/cuda/nn_outact_body.h on the host.
#include "../cuda/nn_kernels.h"
#include "../cuda/nn_outact_body.h"
#include "exec.h"

namespace kfac::emu {
void outact_kernels(Kernels& k) { nnk::outact_kernels<Exec>(k); }
}  // namespace kfac::emu
