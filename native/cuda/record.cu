// The step record on the device: record_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_kernels.h"
#include "record_body.h"

namespace kfac::cuda {
void record_kernels(Kernels& k) { nnk::record_kernels<Exec>(k); }
}  // namespace kfac::cuda
