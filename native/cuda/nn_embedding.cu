// Embedding, KV-cache write on the device: the bodies and adapters of nn_embedding_body.h with the CUDA executor.
#include "exec.cuh"
#include "nn_embedding_body.h"
#include "nn_kernels.h"

namespace kfac::cuda {
void embedding_kernels(Kernels& k) { nnk::embedding_kernels<Exec>(k); }
}  // namespace kfac::cuda
