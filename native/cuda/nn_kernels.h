// The nn entries of a CUDA-shaped op table, one function per op family: each fills its slots of
// KFAC_NN_OP_LIST with the adapters of native/cuda/nn_<family>_body.h instantiated for one
// executor — kfac::cuda (native/cuda/nn_<family>.cu, the device) or kfac::emu
// (native/emu/nn_<family>.cpp, the host emulation).
#pragma once
#include "../core/dispatch.h"

namespace kfac::cuda {
void act_kernels(Kernels& k);
void attention_kernels(Kernels& k);
}  // namespace kfac::cuda

namespace kfac::emu {
void act_kernels(Kernels& k);
void attention_kernels(Kernels& k);
}  // namespace kfac::emu
