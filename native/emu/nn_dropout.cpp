// Dropout in the CUDA emulation: the bodies of native/cuda/nn_dropout_body.h on the host.
#include "../cuda/nn_dropout_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void dropout_kernels(Kernels& k) { nnk::dropout_kernels<Exec>(k); }
}  // namespace kfac::emu
