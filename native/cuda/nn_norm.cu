// LayerNorm, RMSNorm on the device: the bodies and adapters of nn_norm_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_norm_body.h"
#include "nn_kernels.h"

namespace kfac::cuda {
void norm_kernels(Kernels& k) { nnk::norm_kernels<Exec>(k); }
}  // namespace kfac::cuda
