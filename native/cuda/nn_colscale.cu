// Column scaling (IA3) on the device: nn_colscale_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_colscale_body.h"
#include "nn_kernels.h"

namespace kfac::cuda {
void colscale_kernels(Kernels& k) { nnk::colscale_kernels<Exec>(k); }
}  // namespace kfac::cuda
