// Cross-entropy on the device: the bodies and adapters of nn_loss_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_loss_body.h"
#include "nn_kernels.h"

namespace kfac::cuda {
void loss_kernels(Kernels& k) { nnk::loss_kernels<Exec>(k); }
}  // namespace kfac::cuda
