#include "device_cache.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "error.h"

namespace kfac {

namespace {

struct Block {
  char* ptr = nullptr;
  size_t size = 0;
  size_t requested = 0;
  uintptr_t stream = 0;
  bool small = false;
  bool allocated = false;
  Block* prev = nullptr;  // neighbours in the same segment (address order)
  Block* next = nullptr;
  bool whole_segment() const { return !prev && !next; }
};

struct BlockLess {
  bool operator()(const Block* a, const Block* b) const {
    return std::make_tuple(a->stream, a->size, uintptr_t(a->ptr)) < std::make_tuple(b->stream, b->size, uintptr_t(b->ptr));
  }
};

using FreeSet = std::set<Block*, BlockLess>;

std::string mib(uint64_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f MiB", double(b) / double(1 << 20));
  return s;
}

}  // namespace

struct CachingAllocator::Impl {
  std::string name;
  RawDeviceMemory raw;
  bool caching;
  mutable std::mutex mu;
  FreeSet small_free, large_free;
  std::unordered_map<void*, Block*> live;  // allocated blocks by address
  DeviceCacheStats s;

  FreeSet& pool(bool small) { return small ? small_free : large_free; }

  void note_alloc(Block* b) {
    b->allocated = true;
    live[b->ptr] = b;
    s.allocated += b->size;
    s.requested += b->requested;
    ++s.live_blocks;
    if (s.allocated > s.peak_allocated) s.peak_allocated = s.allocated;
  }

  // Splits `b` (free, not in a set) so that it holds `size`; the rest goes into the free set.
  void maybe_split(Block* b, size_t size) {
    size_t rest = b->size - size;
    if (!caching) return;
    if (b->small ? rest < kRound : rest <= kSmallSize) return;
    Block* r = new Block;
    r->ptr = b->ptr + size;
    r->size = rest;
    r->stream = b->stream;
    r->small = b->small;
    r->prev = b;
    r->next = b->next;
    if (b->next) b->next->prev = r;
    b->next = r;
    b->size = size;
    pool(r->small).insert(r);
  }

  void release_segment(Block* b) {  // b: a free whole segment, not in a set
    raw.free(b->ptr);
    s.reserved -= b->size;
    --s.segments;
    ++s.raw_frees;
    delete b;
  }

  uint64_t empty_locked() {
    std::vector<Block*> whole;
    for (FreeSet* set : {&small_free, &large_free})
      for (Block* b : *set)
        if (b->whole_segment()) whole.push_back(b);
    if (whole.empty()) return 0;
    if (raw.synchronize) {
      try {
        raw.synchronize();
      } catch (...) {
        // A device that cannot synchronise cannot be trusted with frees either: keep the cache.
        return 0;
      }
    }
    uint64_t n = 0;
    for (Block* b : whole) {
      pool(b->small).erase(b);
      n += b->size;
      release_segment(b);
    }
    return n;
  }

  [[noreturn]] void throw_oom(size_t bytes, size_t rounded) {
    ++s.ooms;
    size_t free = 0, total = 0;
    bool known = raw.info && raw.info(free, total);
    std::string dev = known ? std::to_string(free) + " of " + std::to_string(total) + " bytes free on the device ("
                                  + mib(free) + " of " + mib(total) + ")"
                            : "the device's free memory unknown";
    uint64_t cached = s.reserved - s.allocated;
    throw Error(ErrorCode::OutOfMemory,
                name + " out of memory: asked for " + std::to_string(bytes) + " bytes (" + mib(rounded) + " rounded); " +
                    dev + "; this process has " + std::to_string(s.reserved) + " bytes reserved (" + mib(s.reserved) +
                    "), " + std::to_string(s.allocated) + " allocated and " + std::to_string(cached) +
                    " cached (reserved but free)",
                "size", known ? "at most " + std::to_string(free) + " bytes" : "fewer bytes",
                std::to_string(bytes) + " bytes");
  }

  void* raw_alloc_or_null(size_t bytes) {
    void* p = raw.alloc(bytes);
    if (p) ++s.raw_allocations;
    return p;
  }
};

CachingAllocator::CachingAllocator(std::string name, RawDeviceMemory raw, bool caching) : impl_(new Impl) {
  impl_->name = std::move(name);
  impl_->raw = std::move(raw);
  impl_->caching = caching;
  impl_->s.caching = caching;
}

CachingAllocator::~CachingAllocator() {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  // Segments: walk each free or live block back to its segment head and give the head's memory back.
  std::vector<Block*> all;
  for (FreeSet* set : {&m.small_free, &m.large_free}) all.insert(all.end(), set->begin(), set->end());
  for (auto& kv : m.live) all.push_back(kv.second);
  for (Block* b : all)
    if (!b->prev) m.raw.free(b->ptr);
  for (Block* b : all) delete b;
}

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes < kRound) return kRound;
  return (bytes + kRound - 1) / kRound * kRound;
}

size_t CachingAllocator::segment_size(size_t rounded) {
  if (rounded <= kSmallSize) return kSmallSegment;
  if (rounded < kMinLargeAlloc) return kLargeSegment;
  return (rounded + kLargeRound - 1) / kLargeRound * kLargeRound;
}

void* CachingAllocator::alloc(size_t bytes, uintptr_t stream) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  ++m.s.allocations;
  if (!m.caching) {
    // The plain path: exactly the bytes asked, one raw allocation (cached segments left from a
    // time with caching on are given back first when the device is full).
    size_t want = bytes ? bytes : 1;
    void* p = m.raw_alloc_or_null(want);
    if (!p && m.empty_locked() > 0) {
      ++m.s.retries;
      p = m.raw_alloc_or_null(want);
    }
    if (!p) m.throw_oom(bytes, want);
    Block* b = new Block;
    b->ptr = static_cast<char*>(p);
    b->size = want;
    b->requested = bytes;
    b->stream = stream;
    b->small = want <= kSmallSize;
    m.s.reserved += want;
    ++m.s.segments;
    if (m.s.reserved > m.s.peak_reserved) m.s.peak_reserved = m.s.reserved;
    m.note_alloc(b);
    return p;
  }
  const size_t size = round_size(bytes);
  const bool small = size <= kSmallSize;
  FreeSet& set = m.pool(small);
  Block key;
  key.stream = stream;
  key.size = size;
  key.ptr = nullptr;
  auto it = set.lower_bound(&key);
  Block* b = nullptr;
  if (it != set.end() && (*it)->stream == stream) {
    b = *it;
    set.erase(it);
    ++m.s.cache_hits;
  } else {
    const size_t seg = segment_size(size);
    void* p = m.raw_alloc_or_null(seg);
    if (!p && m.empty_locked() > 0) {  // nothing cached to give back: retrying would fail the same way
      ++m.s.retries;
      p = m.raw_alloc_or_null(seg);
    }
    if (!p) m.throw_oom(bytes, size);
    b = new Block;
    b->ptr = static_cast<char*>(p);
    b->size = seg;
    b->stream = stream;
    b->small = small;
    m.s.reserved += seg;
    ++m.s.segments;
    if (m.s.reserved > m.s.peak_reserved) m.s.peak_reserved = m.s.reserved;
  }
  m.maybe_split(b, size);
  b->requested = bytes;
  m.note_alloc(b);
  return b->ptr;
}

bool CachingAllocator::free(void* ptr) noexcept {
  if (!ptr) return false;
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.live.find(ptr);
  if (it == m.live.end()) return false;
  Block* b = it->second;
  m.live.erase(it);
  b->allocated = false;
  m.s.allocated -= b->size;
  m.s.requested -= b->requested;
  b->requested = 0;
  --m.s.live_blocks;
  FreeSet& set = m.pool(b->small);
  // Merge with free neighbours (same segment, hence same stream and pool).
  if (b->prev && !b->prev->allocated) {
    Block* p = b->prev;
    set.erase(p);
    p->size += b->size;
    p->next = b->next;
    if (b->next) b->next->prev = p;
    delete b;
    b = p;
  }
  if (b->next && !b->next->allocated) {
    Block* n = b->next;
    set.erase(n);
    b->size += n->size;
    b->next = n->next;
    if (n->next) n->next->prev = b;
    delete n;
  }
  if (!m.caching && b->whole_segment()) m.release_segment(b);
  else set.insert(b);
  return true;
}

uint64_t CachingAllocator::empty_cache() noexcept {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->empty_locked();
}

void CachingAllocator::set_caching(bool on) noexcept {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->caching = on;
  impl_->s.caching = on;
  if (!on) impl_->empty_locked();
}

DeviceCacheStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  DeviceCacheStats s = impl_->s;
  s.cached = s.reserved - s.allocated;
  return s;
}

bool CachingAllocator::device_info(size_t& free, size_t& total) const {
  return impl_->raw.info && impl_->raw.info(free, total);
}

bool device_caching_from_env() {
  const char* v = std::getenv("KFAC_CUDA_CACHING");
  if (!v) return true;
  return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0 || std::strcmp(v, "off") == 0);
}

namespace {
constexpr int kDevices = 2;
std::mutex g_install_mu;
CachingAllocator* g_caches[kDevices] = {nullptr, nullptr};  // never destroyed: tensors may outlive main
uintptr_t (*g_streams[kDevices])() = {nullptr, nullptr};
}  // namespace

CachingAllocator& install_device_cache(Device device, const std::string& name, RawDeviceMemory raw, bool caching) {
  std::lock_guard<std::mutex> lock(g_install_mu);
  CachingAllocator*& c = g_caches[int(device)];
  if (!c) c = new CachingAllocator(name, std::move(raw), caching);
  return *c;
}

CachingAllocator* device_cache(Device device) {
  std::lock_guard<std::mutex> lock(g_install_mu);
  return g_caches[int(device)];
}

void set_device_cache_stream(Device device, uintptr_t (*stream)()) {
  std::lock_guard<std::mutex> lock(g_install_mu);
  g_streams[int(device)] = stream;
}

void* cuda_cache_alloc(size_t bytes) {
  CachingAllocator* c = nullptr;
  uintptr_t (*stream)() = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_install_mu);
    c = g_caches[int(Device::CUDA)];
    stream = g_streams[int(Device::CUDA)];
  }
  if (!c) throw Error(ErrorCode::Internal, "no device memory cache installed for cuda");
  return c->alloc(bytes, stream ? stream() : 0);
}

void cuda_cache_release(void* ptr) {
  if (CachingAllocator* c = device_cache(Device::CUDA)) c->free(ptr);
}

}  // namespace kfac
