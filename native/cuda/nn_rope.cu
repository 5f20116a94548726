// RoPE on the device: the bodies and adapters of nn_rope_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_rope_body.h"
#include "nn_kernels.h"

namespace kfac::cuda {
void rope_kernels(Kernels& k) { nnk::rope_kernels<Exec>(k); }
}  // namespace kfac::cuda
