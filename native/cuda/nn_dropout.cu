// Dropout on the device: the bodies and adapters of nn_dropout_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_dropout_body.h"
#include "nn_kernels.h"

namespace kfac::cuda {
void dropout_kernels(Kernels& k) { nnk::dropout_kernels<Exec>(k); }
}  // namespace kfac::cuda
