// Linear on the device: the bodies and adapters of nn_linear_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_linear_body.h"
#include "nn_kernels.h"

namespace kfac::cuda {
void linear_kernels(Kernels& k) { nnk::linear_kernels<Exec>(k); }
}  // namespace kfac::cuda
