// Data derived from a tensor's contents and worth keeping between calls: the packed bf16 GEMM
// panels of a frozen weight (packing is a pass over the whole weight; a training step reads
// each weight several times). An entry is keyed on the tensor's storage, its offset, and a
// caller-chosen key (kernel, layout, sizes); it records the storage's version when it was made
// and is stale once the storage is written again (Storage::bump_version). Entries are dropped
// with their storage, and all of them by derived_release() (releaseCachedMemory()). Memory
// comes from the host allocator. Thread-safe; an entry in use stays alive until its last user
// lets go of the shared pointer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "tensor.h"

namespace kfac {

// A 64-byte aligned host block (host_alloc), freed when the last reference goes.
class HostBlock {
 public:
  explicit HostBlock(size_t bytes);  // throws OutOfMemory
  ~HostBlock();
  HostBlock(const HostBlock&) = delete;
  HostBlock& operator=(const HostBlock&) = delete;
  HostBlock(HostBlock&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; }
  HostBlock& operator=(HostBlock&&) = delete;
  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_;
  size_t bytes_;
};

struct DerivedKey {
  uint64_t a = 0, b = 0, c = 0;
  bool operator==(const DerivedKey& o) const { return a == o.a && b == o.b && c == o.c; }
};

// The entry of `t` under `key`, made by fill(block) when absent or stale. fill writes the
// whole block of `bytes`; a throw from it leaves nothing cached. With caching disabled
// (derived_set_enabled(false) or KFAC_WEIGHT_PANEL_CACHE=0) a fresh, uncached block every call.
std::shared_ptr<const HostBlock> derived_get(const Tensor& t, const DerivedKey& key, size_t bytes,
                                             const std::function<void(void*)>& fill);

// Drops every entry of a storage (its destructor calls this).
void derived_forget(const Storage* s) noexcept;
// Drops every entry; the bytes they held.
uint64_t derived_release() noexcept;
void derived_set_enabled(bool on) noexcept;
bool derived_enabled() noexcept;

struct DerivedStats {
  uint64_t entries = 0, bytes = 0, hits = 0, misses = 0;
};
DerivedStats derived_stats() noexcept;

}  // namespace kfac
