// Multi-tensor reductions on the device: the bodies and adapters of nn_reduce_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_kernels.h"
#include "nn_reduce_body.h"

namespace kfac::cuda {
void reduce_kernels(Kernels& k) { nnk::reduce_kernels<Exec>(k); }
}  // namespace kfac::cuda
