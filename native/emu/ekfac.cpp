// EKFAC's moments and step in the CUDA emulation: native/cuda/ekfac_body.h on the host.
#include "../cuda/ekfac_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void ekfac_kernels(Kernels& k) { nnk::ekfac_kernels<Exec>(k); }
}  // namespace kfac::emu
