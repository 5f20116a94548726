// Embedding, KV-cache write in the CUDA emulation: the bodies of native/cuda/nn_embedding_body.h on the host.
#include "../cuda/nn_embedding_body.h"
#include "../cuda/nn_kernels.h"
#include "exec.h"

namespace kfac::emu {
void embedding_kernels(Kernels& k) { nnk::embedding_kernels<Exec>(k); }
}  // namespace kfac::emu
