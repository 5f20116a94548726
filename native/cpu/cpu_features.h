// Run-time CPU detection and the choice of micro-kernels.
#pragma once
#include <string>

namespace kfac::cpu {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bf16 = false;  // vdpbf16ps, vcvtne2ps2bf16 (with AVX512BW)
  bool amx_bf16 = false;    // AMX tiles with tdpbf16ps, and the OS saves tile state (XCR0)
  std::string brand;
};

const CpuFeatures& cpu_features();

enum class KernelIsa { Generic = 0, Avx2 = 1, Avx512 = 2 };

// The ISA the kernels dispatch to: the best the CPU supports (AVX-512F, then AVX2+FMA, then
// the portable path), unless KFAC_CPU_KERNEL=generic|avx2|avx512 or set_kernel_isa() asked for
// another one the CPU has. An environment value the CPU lacks falls back to the best one.
KernelIsa kernel_isa();
// Whether the dispatch ISA includes `isa` (the ISAs are ordered: Avx512 implies Avx2 and FMA).
// Code with an AVX2 path should test kernel_isa_at_least(KernelIsa::Avx2), not equality.
inline bool kernel_isa_at_least(KernelIsa isa) { return int(kernel_isa()) >= int(isa); }
// Whether this CPU (and OS) can run the kernels of `isa`.
bool kernel_isa_supported(KernelIsa isa);
// Forces an ISA (for tests of every path). Asking for one the CPU lacks throws.
void set_kernel_isa(KernelIsa isa);
// Back to the automatic choice.
void reset_kernel_isa();
const char* kernel_isa_name(KernelIsa isa);

}  // namespace kfac::cpu
