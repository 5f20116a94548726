// time_slice in the CUDA emulation: the body of native/cuda/nn_timeslice_body.h on the host.
#include "../cuda/nn_kernels.h"
#include "../cuda/nn_timeslice_body.h"
#include "exec.h"

namespace kfac::emu {
void timeslice_kernels(Kernels& k) { nnk::timeslice_kernels<Exec>(k); }
}  // namespace kfac::emu
