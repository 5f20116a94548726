// GELU, SiLU, SwiGLU, ReLU, gated units on the device: the bodies of nn_act_body.h launched by the CUDA executor.
#include "exec.cuh"
#include "nn_act_body.h"
#include "nn_kernels.h"

namespace kfac::cuda {
void act_kernels(Kernels& k) { nnk::act_kernels<Exec>(k); }
}  // namespace kfac::cuda
