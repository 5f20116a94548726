// Why a CUDA build cannot use this machine, in words: a driver older than the build's CUDA
// runtime, or a GPU whose compute capability none of the build's architectures runs on. Plain
// C++ with no CUDA header, so the CPU addon tests the wording (the `_cudaProbeReasons` test hook)
// and the CUDA build's probe (native/cuda/context.cu) uses the same functions.
#pragma once
#include <string>

namespace kfac::cuda_probe {

// A CUDA version as the runtime gives it (1000·major + 10·minor) in words: 13000 → "13.0".
std::string version(int v);

// The reason a driver cannot run this build (cudaErrorInsufficientDriver): the CUDA version the
// driver supports against the build's runtime; driver 0 is no driver at all.
std::string driver_too_old(int driver_version, int runtime_version);

// "" when a GPU of compute capability major.minor runs code built for `architectures` (CMake's
// list, ',' or ';' separated: "80-real,90-real,90-virtual"; a bare number is both), else why
// not. Machine code (real) runs on the same major at an equal or higher minor; PTX (virtual) is
// compiled by the driver for any capability at or above it; an architecture-specific target
// ("90a") runs on its own capability only.
std::string arch_unsupported(int major, int minor, const std::string& architectures, const std::string& device_name);

}  // namespace kfac::cuda_probe
