#include "host_allocator.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(_MSC_VER)
#include <malloc.h>
#else
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "error.h"

namespace kfac {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kSmall = 4096;

void* system_alloc(size_t bytes) {
#if defined(_MSC_VER)
  return _aligned_malloc(bytes, kAlign);
#else
  return std::aligned_alloc(kAlign, bytes);
#endif
}

void system_free(void* p) {
#if defined(_MSC_VER)
  _aligned_free(p);
#else
  std::free(p);
#endif
}

// Test mode (KFAC_HOST_GUARD_PAGES=1, Linux): every block is mapped on its own with its last
// byte just before an inaccessible page, so a kernel that reads or writes past the end of a
// tensor faults at once, whatever the size. Blocks start where that puts them (aligned to 4
// bytes for float32 tensors, 2 for bfloat16: no kernel may assume more of tensor memory);
// nothing is cached. Slow (two system calls per block): for tests only.
bool guard_pages() {
#if defined(__linux__)
  static const bool on = [] {
    const char* env = std::getenv("KFAC_HOST_GUARD_PAGES");
    return env && std::strcmp(env, "1") == 0;
  }();
  return on;
#else
  return false;
#endif
}

#if defined(__linux__)
size_t page_size() {
  static const size_t p = size_t(sysconf(_SC_PAGESIZE));
  return p;
}
size_t guarded_span(size_t bytes) { return (bytes + page_size() - 1) / page_size() * page_size(); }

void* guarded_alloc(size_t bytes) {
  const size_t span = guarded_span(bytes), page = page_size();
  void* base = mmap(nullptr, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return nullptr;
  char* guard = static_cast<char*>(base) + span;
  if (mprotect(guard, page, PROT_NONE) != 0) {
    munmap(base, span + page);
    return nullptr;
  }
  return guard - bytes;
}

void guarded_free(void* p, size_t bytes) {
  char* guard = static_cast<char*>(p) + bytes;
  munmap(guard - guarded_span(bytes), guarded_span(bytes) + page_size());
}
#else
void* guarded_alloc(size_t) { return nullptr; }
void guarded_free(void*, size_t) {}
#endif

uint64_t physical_bytes() {
#if defined(__linux__) || defined(__APPLE__)
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return uint64_t(pages) * uint64_t(page);
#endif
  return uint64_t(8) << 30;
}

// Memory the kernel says is available (MemAvailable); UINT64_MAX when unknown.
uint64_t available_bytes() {
#if defined(__linux__)
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[128];
    unsigned long long kb = 0;
    bool found = false;
    while (!found && std::fgets(line, sizeof line, f)) found = std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1;
    std::fclose(f);
    if (found) return uint64_t(kb) * 1024;
  }
#endif
  return UINT64_MAX;
}

uint64_t default_limit() {
  if (const char* env = std::getenv("KFAC_HOST_CACHE_BYTES")) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(env, &end, 10);
    if (end != env && *end == '\0') return v;
  }
  uint64_t quarter = physical_bytes() / 4;
  uint64_t cap = uint64_t(2) << 30;
  return quarter < cap ? quarter : cap;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;  // size class -> blocks
  HostAllocatorStats stats;
  Cache() { stats.cache_limit_bytes = default_limit(); }

  // Caller holds mu.
  uint64_t release_all() {
    uint64_t n = 0;
    for (auto& [cls, blocks] : free) {
      for (void* p : blocks) system_free(p);
      n += uint64_t(cls) * blocks.size();
      blocks.clear();
    }
    free.clear();
    stats.cached_bytes = 0;
    if (n) ++stats.releases;
    return n;
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may outlive static destruction
  return *c;
}

}  // namespace

size_t host_size_class(size_t bytes) {
  if (bytes == 0) return kAlign;
  if (bytes <= kSmall) return (bytes + kAlign - 1) / kAlign * kAlign;
  if (bytes > SIZE_MAX / 2) return SIZE_MAX;  // no class (host_alloc refuses it): no overflow below
  // Four classes per power of two: 2^k, 1.25·2^k, 1.5·2^k, 1.75·2^k (at most 25% slack).
  size_t p = kSmall;
  while (p * 2 < bytes && p < (SIZE_MAX >> 2)) p *= 2;
  size_t step = p / 4;
  size_t cls = (bytes + step - 1) / step * step;
  return cls;
}

void* host_alloc(size_t bytes) {
  if (guard_pages()) {
    void* p = guarded_alloc(bytes);
    if (!p)
      throw Error(ErrorCode::OutOfMemory, "could not allocate " + std::to_string(bytes) + " bytes", "size",
                  "memory for the tensor", std::to_string(bytes) + " bytes");
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    ++c.stats.allocations;
    ++c.stats.system_allocations;
    c.stats.allocated_bytes += bytes;
    return p;
  }
  size_t cls = host_size_class(bytes);
  if (cls == SIZE_MAX)
    throw Error(ErrorCode::OutOfMemory, "could not allocate " + std::to_string(bytes) + " bytes", "size",
                "memory for the tensor", std::to_string(bytes) + " bytes");
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    ++c.stats.allocations;
    auto it = c.free.find(cls);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.cached_bytes -= cls;
      c.stats.allocated_bytes += cls;
      if (c.stats.allocated_bytes > c.stats.peak_allocated_bytes) c.stats.peak_allocated_bytes = c.stats.allocated_bytes;
      ++c.stats.cache_hits;
      return p;
    }
    // Memory pressure: give the cache back before asking for more than the system has free.
    // (Checked on large misses only: reading the figure costs microseconds.)
    if (c.stats.cached_bytes > 0 && cls >= (size_t(1) << 20) && available_bytes() < uint64_t(cls) + (uint64_t(256) << 20))
      c.release_all();
  }
  void* p = system_alloc(cls);
  if (!p) {
    std::lock_guard<std::mutex> lock(c.mu);
    c.release_all();
    p = system_alloc(cls);
  }
  if (!p)
    throw Error(ErrorCode::OutOfMemory, "could not allocate " + std::to_string(bytes) + " bytes", "size",
                "memory for the tensor", std::to_string(bytes) + " bytes");
  std::lock_guard<std::mutex> lock(c.mu);
  ++c.stats.system_allocations;
  c.stats.allocated_bytes += cls;
  if (c.stats.allocated_bytes > c.stats.peak_allocated_bytes) c.stats.peak_allocated_bytes = c.stats.allocated_bytes;
  return p;
}

void host_free(void* ptr, size_t bytes) noexcept {
  if (!ptr) return;
  if (guard_pages()) {
    guarded_free(ptr, bytes);
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.stats.allocated_bytes -= bytes;
    return;
  }
  size_t cls = host_size_class(bytes);
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.allocated_bytes -= cls;
  if (c.stats.cached_bytes + cls > c.stats.cache_limit_bytes) {
    system_free(ptr);
    return;
  }
  try {
    c.free[cls].push_back(ptr);
  } catch (...) {
    system_free(ptr);
    return;
  }
  c.stats.cached_bytes += cls;
}

uint64_t host_release_cached() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.release_all();
}

void host_set_cache_limit(uint64_t bytes) noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.cache_limit_bytes = bytes;
  if (c.stats.cached_bytes > bytes) c.release_all();
}

HostAllocatorStats host_allocator_stats() noexcept {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

}  // namespace kfac
