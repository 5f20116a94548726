// add / scale / axpy with bfloat16 operands in the CUDA emulation: the bodies of native/cuda/nn_ew_body.h on the host.
#include "../cuda/nn_ew_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void ew_kernels(Kernels& k) { nnk::ew_kernels<Exec>(k); }
}  // namespace kfac::emu
