// Cross-entropy in the CUDA emulation: the bodies of native/cuda/nn_loss_body.h on the host.
#include "../cuda/nn_loss_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void loss_kernels(Kernels& k) { nnk::loss_kernels<Exec>(k); }
}  // namespace kfac::emu
