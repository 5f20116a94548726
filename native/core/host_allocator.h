// A caching allocator for host (CPU) tensor storage. Blocks are 64-byte aligned and rounded up
// to size classes (multiples of 64 bytes up to 4 KiB, then four classes per power of two);
// a freed block goes into a per-class free list and serves the next request of its class
// without asking the system (no fresh pages to fault in, no munmap). The cache is bounded
// (KFAC_HOST_CACHE_BYTES, default a quarter of physical memory, at most 2 GiB): a free that
// would exceed the bound returns the block to the system. When the system refuses memory, or
// reports less free memory than a request needs, the whole cache is released and the request
// retried once; a final failure is an OutOfMemory kfac::Error naming the bytes.
// KFAC_HOST_GUARD_PAGES=1 (Linux, tests only) maps every block on its own, its last byte just
// before an inaccessible page, so a read or write past a tensor faults (see host_allocator.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

namespace kfac {

struct HostAllocatorStats {
  uint64_t allocated_bytes = 0;   // bytes (size classes) held by live tensors
  uint64_t cached_bytes = 0;      // bytes in the free lists
  uint64_t peak_allocated_bytes = 0;
  uint64_t cache_limit_bytes = 0;
  uint64_t allocations = 0;       // host_alloc calls
  uint64_t cache_hits = 0;        // of which served from the cache
  uint64_t system_allocations = 0;
  uint64_t releases = 0;          // times the cache was emptied (pressure or on request)
};

// 64-byte aligned block of at least `bytes` (a 0-byte request gets a 64-byte block). Throws.
void* host_alloc(size_t bytes);
// Returns a block from host_alloc with the same `bytes`. Never throws.
void host_free(void* ptr, size_t bytes) noexcept;
// The size class a request of `bytes` is served from.
size_t host_size_class(size_t bytes);
// Returns every cached block to the system; the number of bytes released.
uint64_t host_release_cached() noexcept;
// Bounds the cache (0 disables caching); releases what is above the new bound.
void host_set_cache_limit(uint64_t bytes) noexcept;
HostAllocatorStats host_allocator_stats() noexcept;

}  // namespace kfac
