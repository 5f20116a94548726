// Run-time CPU detection and the choice of micro-kernels.
#pragma once
#include <string>

namespace kfac::cpu {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  std::string brand;
};

const CpuFeatures& cpu_features();

enum class KernelIsa { Generic = 0, Avx2 = 1 };

// The ISA the kernels dispatch to: the best the CPU supports, unless
// KFAC_CPU_KERNEL=generic or set_kernel_isa() asked for the portable path.
KernelIsa kernel_isa();
// Forces an ISA (for tests of the fallback). Asking for one the CPU lacks throws.
void set_kernel_isa(KernelIsa isa);
// Back to the automatic choice.
void reset_kernel_isa();
const char* kernel_isa_name(KernelIsa isa);

}  // namespace kfac::cpu
