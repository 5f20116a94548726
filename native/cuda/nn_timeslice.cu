// time_slice on the device: the body and adapter of nn_timeslice_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_kernels.h"
#include "nn_timeslice_body.h"

namespace kfac::cuda {
void timeslice_kernels(Kernels& k) { nnk::timeslice_kernels<Exec>(k); }
}  // namespace kfac::cuda
