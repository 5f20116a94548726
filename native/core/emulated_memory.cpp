#include "emulated_memory.h"

#include <cstdlib>
#include <mutex>
#include <unordered_map>

namespace kfac {

namespace {

std::mutex g_mu;
// Never destroyed: a tensor released while the process exits may still reach raw_free.
std::unordered_map<void*, size_t>& g_sizes = *new std::unordered_map<void*, size_t>();
EmulatedMemoryStats g_stats;

void* raw_alloc(size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_stats.limit && g_stats.live_bytes + bytes > g_stats.limit) {
    ++g_stats.refused;
    return nullptr;
  }
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) return nullptr;
  g_sizes[p] = bytes;
  g_stats.live_bytes += bytes;
  ++g_stats.allocations;
  return p;
}

void raw_free(void* p) {
  std::lock_guard<std::mutex> lock(g_mu);
  auto it = g_sizes.find(p);
  if (it == g_sizes.end()) return;
  g_stats.live_bytes -= it->second;
  ++g_stats.frees;
  g_sizes.erase(it);
  std::free(p);
}

bool raw_info(size_t& free, size_t& total) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_stats.limit) return false;
  total = size_t(g_stats.limit);
  free = size_t(g_stats.limit > g_stats.live_bytes ? g_stats.limit - g_stats.live_bytes : 0);
  return true;
}

}  // namespace

RawDeviceMemory emulated_raw_memory() {
  RawDeviceMemory r;
  r.alloc = raw_alloc;
  r.free = raw_free;
  r.info = raw_info;
  return r;
}

void set_emulated_memory_limit(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_stats.limit = bytes;
}

EmulatedMemoryStats emulated_memory_stats() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_stats;
}

}  // namespace kfac
