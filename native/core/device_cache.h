// A caching allocator for device memory, written over abstract raw alloc/free functions so that
// the same code serves the CUDA device (cudaMalloc/cudaFree) and the host-backed test devices
// (the CPU loopback and the CUDA emulation). The scheme is the one of PyTorch's caching
// allocator, simplified:
//
// - requests are rounded up to 512 bytes; those of at most 1 MiB come from the small pool, whose
//   segments (raw allocations) are 2 MiB; larger ones from the large pool, whose segments are
//   20 MiB for requests under 10 MiB and the request rounded up to 2 MiB otherwise;
// - a segment is a doubly linked list of blocks; a free block that is larger than the request is
//   split (small pool: when 512 bytes or more remain; large pool: when more than 1 MiB remains),
//   and a freed block merges with its free neighbours;
// - free blocks are kept per stream, ordered by (stream, size, address): a request takes the
//   smallest free block of its stream and pool that fits (best fit). A block is reused only by
//   work on the stream it was allocated for, so no synchronisation is needed: that stream runs
//   the new work after the old. Using a block on another stream is not supported;
// - when the raw allocator has no memory, every cached segment that is entirely free is given
//   back (empty_cache) and the request is tried once more; a second failure is an OutOfMemory
//   kfac::Error naming the bytes asked, the device's free memory, and the bytes reserved
//   (held in segments), allocated and cached (reserved but free);
// - caching off (KFAC_CUDA_CACHING=0, or set_caching(false)): every request is one raw
//   allocation of exactly its bytes and every free one raw free, as without this allocator.
//
// Thread safety: every member function may be called from any thread; one mutex serialises
// them (the statistics are a consistent snapshot). What the allocator cannot know is which
// device work still reads a block: it relies on the stream order above, so a caller that hands
// a block to another stream must synchronise before freeing it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dtype.h"

namespace kfac {

struct RawDeviceMemory {
  // `bytes` of device memory, or null when the device has none left (other failures throw).
  std::function<void*(size_t bytes)> alloc;
  // Gives a raw allocation back; never throws.
  std::function<void(void* ptr)> free;
  // The device's free and total bytes; false when unknown (may be empty).
  std::function<bool(size_t& free, size_t& total)> info;
  // Waits for the device's queued work; run before cached segments are given back (may be empty).
  std::function<void()> synchronize;
};

struct DeviceCacheStats {
  bool caching = true;
  uint64_t allocated = 0;        // bytes of live blocks (rounded sizes)
  uint64_t peak_allocated = 0;
  uint64_t reserved = 0;         // bytes held in raw allocations (segments)
  uint64_t peak_reserved = 0;
  uint64_t cached = 0;           // reserved − allocated: free blocks kept for reuse
  uint64_t requested = 0;        // bytes asked by live blocks (before rounding)
  uint64_t allocations = 0;      // alloc calls
  uint64_t cache_hits = 0;       // of which served without a raw allocation
  uint64_t raw_allocations = 0;  // raw alloc calls that succeeded
  uint64_t raw_frees = 0;
  uint64_t retries = 0;          // raw failures followed by emptying the cache and a retry
  uint64_t ooms = 0;             // OutOfMemory errors thrown
  uint64_t segments = 0;         // live raw allocations
  uint64_t live_blocks = 0;
};

class CachingAllocator {
 public:
  static constexpr size_t kRound = 512;
  static constexpr size_t kSmallSize = size_t(1) << 20;       // ≤ 1 MiB: small pool
  static constexpr size_t kSmallSegment = size_t(2) << 20;    // small pool segments
  static constexpr size_t kMinLargeAlloc = size_t(10) << 20;  // below: one 20 MiB segment
  static constexpr size_t kLargeSegment = size_t(20) << 20;
  static constexpr size_t kLargeRound = size_t(2) << 20;

  // `name` is the device in error messages ("CUDA"); `caching` false is the plain path.
  CachingAllocator(std::string name, RawDeviceMemory raw, bool caching);
  ~CachingAllocator();  // gives every segment back
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes` for work on `stream` (0 when the device has one). Throws
  // OutOfMemory (see above); never returns null.
  void* alloc(size_t bytes, uintptr_t stream = 0);
  // Returns a block from alloc; false (and nothing done) for a pointer it did not hand out.
  bool free(void* ptr) noexcept;
  // Gives back every segment that is entirely free; the bytes given back.
  uint64_t empty_cache() noexcept;
  // Turns caching on or off (off: empties the cache; blocks split earlier go back when their
  // segment is free again).
  void set_caching(bool on) noexcept;
  DeviceCacheStats stats() const;
  // The device's free and total bytes as the raw memory reports them (false: unknown).
  bool device_info(size_t& free, size_t& total) const;

  // The rounded size and the segment size of a request (for tests and the docs).
  static size_t round_size(size_t bytes);
  static size_t segment_size(size_t rounded);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// KFAC_CUDA_CACHING: "0", "false" or "off" turn caching off; anything else (or unset) leaves it on.
bool device_caching_from_env();

// The one cache of a device id's memory (the CUDA id: the real device, or a host test device).
// install_device_cache makes it once per process and keeps it (later calls return the first);
// it lives until the process ends. device_cache is null when none was installed.
CachingAllocator& install_device_cache(Device device, const std::string& name, RawDeviceMemory raw, bool caching);
CachingAllocator* device_cache(Device device);
// DeviceAllocator alloc/release functions over the CUDA id's cache (stream 0 unless the raw
// memory's owner says otherwise through set_device_cache_stream).
void* cuda_cache_alloc(size_t bytes);
void cuda_cache_release(void* ptr);
void set_device_cache_stream(Device device, uintptr_t (*stream)());

}  // namespace kfac
