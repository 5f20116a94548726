// Host memory posing as device memory, for the test devices registered under the cuda id (the
// CPU loopback and the CUDA emulation): the raw allocator under their caching allocator
// (native/core/device_cache.h). It counts its calls and can be told to refuse memory past a
// limit, so that tests see how often the cache goes to the "device" and can run it out of memory.
#pragma once
#include <cstdint>

#include "device_cache.h"

namespace kfac {

struct EmulatedMemoryStats {
  uint64_t allocations = 0;  // raw allocations made
  uint64_t frees = 0;
  uint64_t live_bytes = 0;   // bytes of raw allocations not yet freed
  uint64_t limit = 0;        // 0: no limit
  uint64_t refused = 0;      // allocations refused by the limit
};

// The raw memory functions (64-byte aligned host blocks; null past the limit).
RawDeviceMemory emulated_raw_memory();
// A limit on the live raw bytes (0: none). With a limit the device reports free = limit − live.
void set_emulated_memory_limit(uint64_t bytes);
EmulatedMemoryStats emulated_memory_stats();

}  // namespace kfac
