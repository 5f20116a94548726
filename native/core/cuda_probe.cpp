#include "cuda_probe.h"

#include <cctype>
#include <vector>

namespace kfac::cuda_probe {

std::string version(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

std::string driver_too_old(int driver_version, int runtime_version) {
  if (driver_version <= 0) return "no CUDA driver is installed (this build needs one for CUDA " + version(runtime_version) + ")";
  return "the NVIDIA driver is too old for this build: it supports CUDA " + version(driver_version) +
         ", the build uses CUDA " + version(runtime_version) + " (update the driver to one for CUDA " +
         version(runtime_version) + " or newer)";
}

namespace {
struct Arch {
  int cc;  // 10·major + minor
  bool real, ptx;
  bool specific;  // "90a": features of that one capability, run on it alone
};

std::vector<Arch> parse(const std::string& list) {
  std::vector<Arch> out;
  size_t i = 0;
  while (i < list.size()) {
    size_t j = list.find_first_of(",;", i);
    if (j == std::string::npos) j = list.size();
    std::string item = list.substr(i, j - i);
    i = j + 1;
    size_t k = 0;
    while (k < item.size() && std::isdigit(static_cast<unsigned char>(item[k]))) ++k;
    if (k == 0 || k > 4) continue;
    const int cc = std::stoi(item.substr(0, k));
    std::string kind = item.substr(k);
    const bool specific = !kind.empty() && std::isalpha(static_cast<unsigned char>(kind[0]));
    if (specific) kind = kind.substr(1);
    out.push_back({cc, kind != "-virtual", kind != "-real", specific});
  }
  return out;
}
}  // namespace

std::string arch_unsupported(int major, int minor, const std::string& architectures, const std::string& device_name) {
  const std::vector<Arch> archs = parse(architectures);
  if (archs.empty()) return "";  // a build that does not say: let the first kernel launch tell
  const int cc = 10 * major + minor;
  std::string have;
  for (const Arch& a : archs) {
    if (a.specific ? a.cc == cc : ((a.real && a.cc / 10 == major && a.cc <= cc) || (a.ptx && a.cc <= cc))) return "";
    have += std::string(have.empty() ? "" : ", ") + (a.real ? "sm_" : "compute_") + std::to_string(a.cc) + (a.specific ? "a" : "");
  }
  return "GPU 0 (" + device_name + ") has compute capability " + std::to_string(major) + "." + std::to_string(minor) +
         ", which this build cannot run: it carries " + have + " (build it for this GPU with CMAKE_CUDA_ARCHITECTURES)";
}

}  // namespace kfac::cuda_probe
