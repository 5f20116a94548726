// The Kronecker quadratic form on the device: quadratic_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_kernels.h"
#include "quadratic_body.h"

namespace kfac::cuda {
void quadratic_kernels(Kernels& k) { nnk::quadratic_kernels<Exec>(k); }
}  // namespace kfac::cuda
