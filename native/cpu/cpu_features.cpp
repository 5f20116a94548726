#include "cpu_features.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "../core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace kfac::cpu {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    bool osxsave = (c >> 27) & 1;
    bool avx = (c >> 28) & 1;
    bool fma = (c >> 12) & 1;
    bool ymm_enabled = false, zmm_enabled = false, tiles_enabled = false;
    if (osxsave) {
      unsigned lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      ymm_enabled = (lo & 0x6) == 0x6;
      zmm_enabled = (lo & 0xe6) == 0xe6;
      tiles_enabled = (lo & 0x60000) == 0x60000;  // XTILECFG and XTILEDATA
    }
    unsigned max_leaf = __get_cpuid_max(0, nullptr);
    if (avx && ymm_enabled && max_leaf >= 7 && __get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      f.avx2 = (b >> 5) & 1;
      f.fma = fma;
      f.avx512f = zmm_enabled && ((b >> 16) & 1);
      bool avx512bw = (b >> 30) & 1;
      f.amx_bf16 = tiles_enabled && ((d >> 22) & 1) && ((d >> 24) & 1);
      unsigned a1, b1, c1, d1;
      if (f.avx512f && avx512bw && a >= 1 && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512bf16 = (a1 >> 5) & 1;
    }
  }
  unsigned regs[12] = {0};
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i)
      __get_cpuid(0x80000002 + i, &regs[i * 4], &regs[i * 4 + 1], &regs[i * 4 + 2], &regs[i * 4 + 3]);
    char brand[49];
    std::memcpy(brand, regs, 48);
    brand[48] = 0;
    f.brand = brand;
    size_t s = f.brand.find_first_not_of(' ');
    f.brand = s == std::string::npos ? "" : f.brand.substr(s);
  }
#endif
  return f;
}

KernelIsa best_isa() {
  const char* env = std::getenv("KFAC_CPU_KERNEL");
  if (env && std::strcmp(env, "generic") == 0) return KernelIsa::Generic;
  if (env && std::strcmp(env, "avx2") == 0 && kernel_isa_supported(KernelIsa::Avx2))
    return KernelIsa::Avx2;
  if (kernel_isa_supported(KernelIsa::Avx512)) return KernelIsa::Avx512;
  if (kernel_isa_supported(KernelIsa::Avx2)) return KernelIsa::Avx2;
  return KernelIsa::Generic;
}

std::atomic<int> g_forced{-1};

const char* supported_kernels() {
  return kernel_isa_supported(KernelIsa::Avx2) ? "generic or avx2" : "generic";
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

KernelIsa kernel_isa() {
  int forced = g_forced.load(std::memory_order_relaxed);
  if (forced >= 0) return KernelIsa(forced);
  static const KernelIsa best = best_isa();
  return best;
}

bool kernel_isa_supported(KernelIsa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case KernelIsa::Avx512: return f.avx512f && f.avx2 && f.fma;
    case KernelIsa::Avx2: return f.avx2 && f.fma;
    default: return true;
  }
}

void set_kernel_isa(KernelIsa isa) {
  if (isa == KernelIsa::Avx2 && !kernel_isa_supported(isa))
    throw Error(ErrorCode::InvalidArgument, "kernel: this CPU has no AVX2/FMA", "kernel", "generic",
                "avx2");
  if (isa == KernelIsa::Avx512 && !kernel_isa_supported(isa))
    throw Error(ErrorCode::InvalidArgument, "kernel: this CPU has no AVX-512F", "kernel",
                supported_kernels(), "avx512");
  g_forced.store(int(isa), std::memory_order_relaxed);
}

void reset_kernel_isa() { g_forced.store(-1, std::memory_order_relaxed); }

const char* kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::Avx512: return "avx512";
    case KernelIsa::Avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace kfac::cpu
