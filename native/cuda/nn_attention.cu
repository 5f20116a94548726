// Attention forward and backward on the device: the block bodies of nn_attention_body.h
// launched by the CUDA executor, with the shared-memory opt-in their tiles need.
#include <string>

#include "exec.cuh"
#include "nn_attention_launch.h"
#include "nn_kernels.h"

namespace kfac::nnk {

// Above 48 KiB a kernel must opt in to dynamic shared memory; more than the device's opt-in
// limit is refused with the head dimension named (D ≤ 256 fits sm_90's 227 KiB).
template <class F>
struct AttnSharedMemory<cuda::Exec, F> {
  static void prepare(size_t bytes) {
    int dev = 0, optin = 0;
    cuda::check(cudaGetDevice(&dev), "cudaGetDevice");
    cuda::check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev), "cudaDeviceGetAttribute");
    if (bytes > size_t(optin))
      throw_arg(ErrorCode::InvalidArgument, "q",
                "a head dimension whose attention tiles fit the device's " + std::to_string(optin) +
                    " bytes of shared memory per block",
                std::to_string(bytes) + " bytes");
    if (bytes > 48 * 1024)
      cuda::check(cudaFuncSetAttribute(cuda::block_kernel<F>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)),
                  "cudaFuncSetAttribute (attention shared memory)");
  }
};

}  // namespace kfac::nnk

namespace kfac::cuda {
void attention_kernels(Kernels& k) { nnk::attention_kernels<Exec>(k); }
}  // namespace kfac::cuda
