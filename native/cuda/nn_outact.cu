// tanh and relu (derivative from the output) on the device: nn_outact_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_kernels.h"
#include "nn_outact_body.h"

namespace kfac::cuda {
void outact_kernels(Kernels& k) { nnk::outact_kernels<Exec>(k); }
}  // namespace kfac::cuda
