// add / scale / axpy with bfloat16 operands on the device: the bodies of nn_ew_body.h.
#include "exec.cuh"
#include "nn_ew_body.h"
#include "nn_kernels.h"

namespace kfac::cuda {
void ew_kernels(Kernels& k) { nnk::ew_kernels<Exec>(k); }
}  // namespace kfac::cuda
