// The step record in the CUDA emulation: native/cuda/record_body.h on the host.
#include "../cuda/nn_kernels.h"
#include "../cuda/record_body.h"
#include "exec.h"

namespace kfac::emu {
void record_kernels(Kernels& k) { nnk::record_kernels<Exec>(k); }
}  // namespace kfac::emu
