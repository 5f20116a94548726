// Multi-tensor reductions in the CUDA emulation: the bodies of native/cuda/nn_reduce_body.h on the host.
#include "../cuda/nn_kernels.h"
#include "../cuda/nn_reduce_body.h"
#include "exec.h"

namespace kfac::emu {
void reduce_kernels(Kernels& k) { nnk::reduce_kernels<Exec>(k); }
}  // namespace kfac::emu
