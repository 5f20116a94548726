// Column scaling (IA3) in the CUDA emulation: native/cuda/nn_colscale_body.h on the host.
#include "../cuda/nn_colscale_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void colscale_kernels(Kernels& k) { nnk::colscale_kernels<Exec>(k); }
}  // namespace kfac::emu
