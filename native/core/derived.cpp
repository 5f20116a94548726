#include "derived.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "host_allocator.h"

namespace kfac {

HostBlock::HostBlock(size_t bytes) : ptr_(host_alloc(bytes)), bytes_(bytes) {}
HostBlock::~HostBlock() { host_free(ptr_, bytes_); }

namespace {

struct Entry {
  size_t offset;
  DerivedKey key;
  uint64_t version;
  std::shared_ptr<const HostBlock> block;
};

struct Registry {
  std::mutex mu;
  std::unordered_map<const Storage*, std::vector<Entry>> entries;
  DerivedStats stats;
  std::atomic<bool> enabled{true};
  Registry() {
    const char* env = std::getenv("KFAC_WEIGHT_PANEL_CACHE");
    if (env && std::strcmp(env, "0") == 0) enabled.store(false);
  }
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: storages may outlive static destruction
  return *r;
}

}  // namespace

std::shared_ptr<const HostBlock> derived_get(const Tensor& t, const DerivedKey& key, size_t bytes,
                                             const std::function<void(void*)>& fill) {
  Registry& r = registry();
  Storage* s = t.storage();
  const bool on = r.enabled.load(std::memory_order_relaxed) && s;
  const uint64_t version = s ? s->version() : 0;
  if (on) {
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.entries.find(s);
    if (it != r.entries.end())
      for (const Entry& e : it->second)
        if (e.offset == t.offset_bytes() && e.key == key && e.version == version && e.block->bytes() == bytes) {
          ++r.stats.hits;
          return e.block;
        }
  }
  auto block = std::make_shared<HostBlock>(bytes);
  fill(block->data());
  if (!on) return block;
  std::lock_guard<std::mutex> lock(r.mu);
  ++r.stats.misses;
  std::vector<Entry>& list = r.entries[s];
  for (auto e = list.begin(); e != list.end();)
    if (e->offset == t.offset_bytes() && e->key == key) {  // a stale one: replaced
      r.stats.bytes -= e->block->bytes();
      --r.stats.entries;
      e = list.erase(e);
    } else {
      ++e;
    }
  list.push_back(Entry{t.offset_bytes(), key, version, block});
  r.stats.bytes += bytes;
  ++r.stats.entries;
  s->has_derived.store(true, std::memory_order_release);
  return block;
}

void derived_forget(const Storage* s) noexcept {
  Registry& r = registry();
  std::vector<Entry> dropped;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.entries.find(s);
    if (it == r.entries.end()) return;
    for (const Entry& e : it->second) r.stats.bytes -= e.block->bytes();
    r.stats.entries -= it->second.size();
    dropped.swap(it->second);
    r.entries.erase(it);
  }
}

uint64_t derived_release() noexcept {
  Registry& r = registry();
  std::unordered_map<const Storage*, std::vector<Entry>> dropped;
  uint64_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    bytes = r.stats.bytes;
    dropped.swap(r.entries);
    r.stats.bytes = 0;
    r.stats.entries = 0;
  }
  return bytes;
}

void derived_set_enabled(bool on) noexcept {
  registry().enabled.store(on);
  if (!on) derived_release();
}

bool derived_enabled() noexcept { return registry().enabled.load(); }

DerivedStats derived_stats() noexcept {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.stats;
}

}  // namespace kfac
