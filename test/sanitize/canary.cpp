// A deliberate bug, compiled with the sanitizers by scripts/test-sanitize.mjs and loaded into Node
// before the sanitized test run: SANITIZE_CANARY=asan reads a freed heap block, =ubsan overflows a
// signed int. The run must see the report and fail, or the sanitizer setup itself is broken
// (runtime not preloaded, options not read, reports not collected). Not part of the addon.
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
struct Canary {
  Canary() {
    const char* kind = std::getenv("SANITIZE_CANARY");
    if (kind == nullptr) return;
    if (std::strcmp(kind, "asan") == 0) {
      volatile char* p = static_cast<char*>(std::malloc(8));
      std::free(const_cast<char*>(p));
      volatile char c = p[3];  // heap-use-after-free
      std::printf("%d\n", c);
    } else if (std::strcmp(kind, "ubsan") == 0) {
      volatile int big = INT_MAX;
      volatile int r = big + 1;  // signed-integer-overflow
      std::printf("%d\n", r);
    }
  }
} canary;
}  // namespace
