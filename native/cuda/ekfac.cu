// EKFAC's moments and step on the device: ekfac_body.h with the CUDA executor.
#include "ekfac_body.h"
#include "exec.cuh"
#include "nn_kernels.h"

namespace kfac::cuda {
void ekfac_kernels(Kernels& k) { nnk::ekfac_kernels<Exec>(k); }
}  // namespace kfac::cuda
